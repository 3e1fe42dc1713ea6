package ai.bonsai.backend.cpu;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.Backends;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The profiling hook: a decorator installed with observeWith sees the ops and changes no result; null removes it. */
class CpuBackendObserveTest {
    @Test
    void decoratorSeesOpsAndResultsAreUnchanged() {
        Tensor a = Tensor.of(new float[] {1, 2, 3}, 3), b = Tensor.of(new float[] {4, 5, 6}, 3);
        float[] plain = a.mul(b).add(a).toFloatArray();
        List<String> seen = new ArrayList<>();
        Backend decorator = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, (p, m, args) -> {
            seen.add(m.getName());
            try {
                return m.invoke(CpuBackend.get(), args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
        CpuBackend.observeWith(decorator);
        float[] observed;
        try {
            assertSame(decorator, a.backend());
            assertSame(decorator, Backends.of(Device.cpu()));
            observed = a.mul(b).add(a).toFloatArray();
        } finally {
            CpuBackend.observeWith(null);
        }
        assertArrayEquals(plain, observed);
        assertTrue(seen.contains("binary"), seen.toString());
        assertSame(CpuBackend.get(), a.backend());
        assertSame(CpuBackend.get(), Backends.of(Device.cpu()));
    }
}
