package ai.bonsai.cuda;

import java.util.List;
import java.util.Map;

/**
 * Every kernel the Java side launches, by PTX module (one module per {@code src/main/cuda/*.cu} family). The
 * driver loads exactly these; a test checks each is an {@code .entry} of its module's committed PTX.
 */
public final class KernelCatalog {
    private KernelCatalog() {}

    public static final Map<String, List<String>> KERNELS = Map.of(
            "elementwise", List.of("ew_fill", "ew_unary", "ew_affine", "ew_binary"),
            "reduce", List.of("reduce_f32", "argmax_f32"),
            "movement", List.of("strided_f32"),
            "softmax", List.of("softmax_rows"),
            "optim", List.of("sgd_step", "adam_step"));

    public static final List<String> MODULES = KERNELS.keySet().stream().sorted().toList();

    public static List<String> kernelsOf(String module) { return KERNELS.get(module); }
}
