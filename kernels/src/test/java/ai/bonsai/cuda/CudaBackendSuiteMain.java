package ai.bonsai.cuda;

import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

import java.io.PrintWriter;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

/**
 * Runs {@link CudaBackendSuiteTest} (the engine's backend suite on cuda:0) outside Maven, for scripts/gpu-check on a
 * GPU machine: {@code java -cp bonsai.jar:tests/* ai.bonsai.cuda.CudaBackendSuiteMain}. Exit 0 when every case
 * passed, 1 when one failed, 2 when they all skipped (no usable GPU).
 */
public final class CudaBackendSuiteMain {
    private CudaBackendSuiteMain() {}

    public static void main(String[] args) {
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request().selectors(selectClass(CudaBackendSuiteTest.class)).build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        launcher.execute(request, listener);
        TestExecutionSummary s = listener.getSummary();
        PrintWriter out = new PrintWriter(System.out, true);
        s.getFailures().forEach(f -> out.println("backend suite FAILED: " + f.getTestIdentifier().getDisplayName() + ": " + f.getException()));
        out.printf("backend suite on cuda:0: %d passed, %d failed, %d skipped of %d%n", s.getTestsSucceededCount(), s.getTotalFailureCount(),
                s.getTestsAbortedCount() + s.getTestsSkippedCount(), s.getTestsFoundCount());
        System.exit(s.getTotalFailureCount() > 0 ? 1 : s.getTestsSucceededCount() == 0 ? 2 : 0);
    }
}
