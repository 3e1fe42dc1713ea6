package ai.bonsai.dsp.cli;

import ai.bonsai.data.TrainSplit;
import ai.bonsai.dsp.models.Architectures;
import picocli.CommandLine.Option;

/** Which model a training command builds: a CIFAR ResNet of depth {@code -l} (the default), or {@code --arch NAME}. */
public final class ArchOptions {
    @Option(names = {"-l", "--layers"}, defaultValue = "20", description = "Depth of the CIFAR ResNet: 20, 32, 44, 56 or 110 (default: ${DEFAULT-VALUE}; ignored with --arch).")
    int layers;

    @Option(names = "--arch", paramLabel = "NAME",
            description = "Another architecture: resnet18, resnet34, resnet50 (torchvision layout), vgg16 (VGG-16-BN, CIFAR variant) or mobilenetv2. "
                    + "Checkpoints are then named NAME.safetensors, NAME_g<G>, NAME_g<G>_p<rate>.")
    String arch;

    Architectures.Spec spec() { return Architectures.of(arch, layers); }

    /** The model's input without the batch axis, from the data: (3, 32, 32) for CIFAR-10. */
    static int[] inputDims(TrainSplit data) {
        int[] d = data.train().imageShape().dims();
        return d.clone();
    }
}
