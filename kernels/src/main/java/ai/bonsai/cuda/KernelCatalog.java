package ai.bonsai.cuda;

import java.util.List;
import java.util.Map;

/**
 * Every kernel the Java side launches, by PTX module (one module per {@code src/main/cuda/*.cu} family). The
 * driver loads exactly these; a test checks each is an {@code .entry} of its module's committed PTX.
 */
public final class KernelCatalog {
    private KernelCatalog() {}

    public static final Map<String, List<String>> KERNELS = Map.ofEntries(
            Map.entry("elementwise", List.of("ew_fill", "ew_unary", "ew_affine", "ew_binary")),
            Map.entry("reduce", List.of("reduce_f32", "argmax_f32")),
            Map.entry("movement", List.of("strided_f32")),
            Map.entry("softmax", List.of("softmax_rows")),
            Map.entry("optim", List.of("sgd_step", "adam_step")),
            Map.entry("gather", List.of("index_select", "index_add", "take_along", "take_along_add")),
            Map.entry("pool", List.of("max_pool_fwd", "max_pool_bwd", "adaptive_avg_fwd", "adaptive_avg_bwd")),
            Map.entry("batchnorm", List.of("bn_train", "bn_eval", "bn_backward")),
            Map.entry("conv", List.of("conv_fwd", "conv_bwd_data", "conv_bwd_weight")),
            Map.entry("gemm", List.of("gemm_tiled")),
            Map.entry("branch_conv", List.of("branch_conv", "branch_output_stage", "branch_pair")),
            Map.entry("group_reg", List.of("group_rowdots", "group_stats", "group_penalty", "group_second_order")));

    public static final List<String> MODULES = KERNELS.keySet().stream().sorted().toList();

    public static List<String> kernelsOf(String module) { return KERNELS.get(module); }
}
