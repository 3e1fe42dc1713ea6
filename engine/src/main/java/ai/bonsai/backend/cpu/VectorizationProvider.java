package ai.bonsai.backend.cpu;

import java.util.logging.Logger;

/**
 * Chooses between the Vector API (SIMD) kernels and their scalar fallbacks, the way Lucene does.
 *
 * <p>Each kernel family is an interface with a scalar implementation in this package and a SIMD one in
 * {@code ai.bonsai.backend.cpu.simd}. The SIMD class is only loaded by name, and only when the
 * {@code jdk.incubator.vector} module is present ({@code --add-modules jdk.incubator.vector}) and
 * {@code -Dbonsai.simd=false} is not set, so the engine still runs on a JVM started without the flag.
 */
public final class VectorizationProvider {
    private static final Logger LOG = Logger.getLogger(VectorizationProvider.class.getName());
    private static final boolean SIMD = detect();

    private VectorizationProvider() {}

    private static boolean detect() {
        if ("false".equalsIgnoreCase(System.getProperty("bonsai.simd", "true"))) {
            LOG.fine("bonsai.simd=false: using scalar CPU kernels");
            return false;
        }
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            LOG.info("jdk.incubator.vector is not enabled; using scalar CPU kernels "
                    + "(start the JVM with --add-modules jdk.incubator.vector for SIMD)");
            return false;
        }
        return true;
    }

    /** True when the SIMD kernels are in use. */
    public static boolean simdEnabled() { return SIMD; }

    /**
     * Returns the SIMD implementation {@code simdClassName} of {@code type} when SIMD is enabled and the class
     * loads, else {@code scalar}.
     */
    public static <T> T load(Class<T> type, String simdClassName, T scalar) {
        if (!SIMD) return scalar;
        try {
            Class<?> c = Class.forName(simdClassName);
            return type.cast(c.getDeclaredConstructor().newInstance());
        } catch (ReflectiveOperationException | LinkageError e) {
            LOG.warning("could not load " + simdClassName + " (" + e + "); using scalar kernels");
            return scalar;
        }
    }
}
