package ai.bonsai.dsp.models;

import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Generator;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * The architectures the CLI builds by name ({@code --arch}), and how a checkpoint names them. The CIFAR ResNet of
 * the DSP reference is the default (no {@code --arch}; depth from {@code -l}); its checkpoints keep the reference's
 * names ({@code resnet20.safetensors}) and metadata ({@code architecture cifar_resnet}, {@code depth 20}). Every
 * other architecture is its name: {@code --arch resnet50} writes {@code resnet50.safetensors} with
 * {@code architecture resnet50}.
 */
public final class Architectures {
    private Architectures() {}

    /** The architecture name of CIFAR ResNets in checkpoint metadata. */
    public static final String CIFAR_RESNET = "cifar_resnet";

    /** Named architectures: (number of classes, generator) to a freshly initialised model. */
    private static final Map<String, BiFunction<Integer, Generator, Module>> NAMED = new LinkedHashMap<>();

    static {
        NAMED.put("resnet18", TorchvisionResNet::resnet18);
        NAMED.put("resnet34", TorchvisionResNet::resnet34);
        NAMED.put("resnet50", TorchvisionResNet::resnet50);
        NAMED.put("vgg16", Vgg16Bn::new);
        NAMED.put("mobilenetv2", MobileNetV2::mobilenetV2);
    }

    /** The names {@code --arch} takes. */
    public static List<String> names() { return List.copyOf(NAMED.keySet()); }

    /**
     * One architecture: {@code name} is {@link #CIFAR_RESNET} (with its {@code depth}) or one of {@link #names()}
     * (depth 0).
     */
    public record Spec(String name, int depth) {
        public Spec {
            if (name.equals(CIFAR_RESNET)) {
                if (depth < 8 || (depth - 2) % 6 != 0) throw new IllegalArgumentException("-l/--layers: a CIFAR ResNet's depth must be 6n+2 (20, 32, 44, 56, 110), got " + depth);
            } else if (!NAMED.containsKey(name)) {
                throw new IllegalArgumentException("--arch: unknown architecture '" + name + "' (expected one of " + String.join(", ", NAMED.keySet()) + ")");
            }
        }

        /** Checkpoint files start with this: {@code resnet20} for a CIFAR ResNet-20, else the name. */
        public String baseName() { return isCifarResNet() ? "resnet" + depth : name; }

        /** For messages: "ResNet-20 (CIFAR)" or the name. */
        public String displayName() { return isCifarResNet() ? "ResNet-" + depth + " (CIFAR)" : name; }

        public boolean isCifarResNet() { return name.equals(CIFAR_RESNET); }

        /** The command-line flags that select this architecture, for "next:" hints. */
        public String flags() { return isCifarResNet() ? "-l " + depth : "--arch " + name; }

        public Module create(int numClasses, Generator g) {
            if (numClasses < 1) throw new IllegalArgumentException(displayName() + ": numClasses must be positive, got " + numClasses);
            return isCifarResNet() ? new CifarResNet(depth, numClasses, g) : NAMED.get(name).apply(numClasses, g);
        }

        /** The metadata keys that name the architecture in a checkpoint. */
        public void putMetadata(Map<String, String> m) {
            m.put("architecture", name);
            if (isCifarResNet()) m.put("depth", Integer.toString(depth));
        }
    }

    /** From the command line: {@code arch} null means the CIFAR ResNet of depth {@code layers}. */
    public static Spec of(String arch, int layers) {
        if (arch == null || arch.isBlank()) return new Spec(CIFAR_RESNET, layers);
        String a = arch.trim().toLowerCase(java.util.Locale.ROOT);
        return new Spec(a, 0);
    }

    /** From checkpoint metadata ({@code architecture}, and {@code depth} for a CIFAR ResNet). */
    public static Spec fromMetadata(Map<String, String> metadata, String file) {
        String arch = metadata.get("architecture");
        if (arch == null) throw new IllegalArgumentException("checkpoint " + file + ": metadata has no 'architecture'");
        try {
            if (arch.equals(CIFAR_RESNET)) {
                String d = metadata.get("depth");
                if (d == null) throw new IllegalArgumentException("metadata has no 'depth'");
                return new Spec(CIFAR_RESNET, Integer.parseInt(d.trim()));
            }
            return new Spec(arch, 0);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("checkpoint " + file + ": architecture '" + arch + "': " + e.getMessage(), e);
        }
    }
}
