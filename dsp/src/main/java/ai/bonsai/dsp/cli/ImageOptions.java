package ai.bonsai.dsp.cli;

import ai.bonsai.data.Dataset;
import ai.bonsai.data.ImageCrop;
import ai.bonsai.data.ImageFolder;
import ai.bonsai.data.TrainSplit;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Image files as data ({@code --data imagefolder:DIR} or {@code --data imagelist:FILE}) and their sizes: training
 * crops are RandomResizedCrop(--image-size), evaluation is Resize(--resize-size) then CenterCrop(--image-size), both
 * normalised with the ImageNet mean and std (the transforms are chosen by the loaders in {@link CommonOptions}).
 */
public final class ImageOptions {
    @Option(names = "--image-size", paramLabel = "N", defaultValue = "224",
            description = "With imagefolder:/imagelist: data, the side of the square crops the model sees (default: ${DEFAULT-VALUE}). "
                    + "CIFAR ResNets pool globally, so any size runs; the cost grows with its square.")
    int imageSize;

    @Option(names = "--resize-size", paramLabel = "N",
            description = "With imagefolder:/imagelist: data, the short side images are resized to before the evaluation center crop "
                    + "(default: --image-size * 256 / 224, so 256 for 224).")
    Integer resizeSize;

    @Option(names = "--loader-threads", paramLabel = "N", defaultValue = "2",
            description = "With imagefolder:/imagelist: data, threads decoding and resizing images ahead of the model (default: ${DEFAULT-VALUE}).")
    int workers;

    /** What --data names when it is image files. */
    record Source(boolean list, Path path) {
        String describe() { return (list ? "imagelist:" : "imagefolder:") + path; }
    }

    /** The image source --data names, or null when it names CIFAR data (or nothing). */
    static Source source(String data) {
        if (data == null) return null;
        if (data.startsWith("imagefolder:")) return new Source(false, Path.of(nonEmpty(data, "imagefolder:")));
        if (data.startsWith("imagelist:")) return new Source(true, Path.of(nonEmpty(data, "imagelist:")));
        return null;
    }

    private static String nonEmpty(String data, String prefix) {
        String rest = data.substring(prefix.length());
        if (rest.isEmpty()) throw new IllegalArgumentException("--data " + data + ": expected a path after '" + prefix + "'");
        return rest;
    }

    ImageCrop trainCrop() {
        check();
        return ImageCrop.randomResized(imageSize);
    }

    ImageCrop evalCrop() {
        check();
        return ImageCrop.resizeCenter(resize(), imageSize);
    }

    int resize() { return resizeSize != null ? resizeSize : (int) Math.round(imageSize * 256.0 / 224.0); }

    private void check() {
        if (imageSize < 1) throw new IllegalArgumentException("--image-size: expected a positive number, got " + imageSize);
        if (resizeSize != null && resizeSize < 1) throw new IllegalArgumentException("--resize-size: expected a positive number, got " + resizeSize);
        if (workers < 1) throw new IllegalArgumentException("--loader-threads: expected a positive number, got " + workers);
    }

    /** The evaluation view of {@code src}; for a list, labels must be below {@code listClasses} (0: any). */
    Dataset evalData(Source src, int listClasses) {
        return open(src, listClasses).dataset(evalCrop());
    }

    private static ImageFolder open(Source src, int listClasses) {
        try {
            return src.list() ? ImageFolder.fromList(src.path(), listClasses) : ImageFolder.open(src.path());
        } catch (IOException e) {
            throw new UncheckedIOException("--data " + src.describe() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Training data from image files: DIR/train and DIR/val when both exist (ImageNet's layout), otherwise the
     * folder or list itself with {@code holdout} of each class held out, chosen by {@code seed}
     * ({@link ImageFolder#split}).
     */
    TrainSplit trainingData(Source src, double holdout, long seed) {
        if (!src.list() && Files.isDirectory(src.path().resolve("train")) && Files.isDirectory(src.path().resolve("val"))) {
            ImageFolder train = open(new Source(false, src.path().resolve("train")), 0);
            ImageFolder val = open(new Source(false, src.path().resolve("val")), 0);
            if (!train.classes().equals(val.classes())) {
                throw new IllegalArgumentException("--data " + src.describe() + ": train/ has classes " + train.classes()
                        + " but val/ has " + val.classes() + "; they must be the same folders");
            }
            return new TrainSplit(train.dataset(trainCrop()), val.dataset(evalCrop()));
        }
        if (!(holdout > 0 && holdout < 1)) throw new IllegalArgumentException("--holdout: expected a fraction in (0, 1), got " + holdout);
        ImageFolder[] parts = open(src, 0).split(holdout, seed);
        for (ImageFolder p : parts) {
            if (p.size() == 0) throw new IllegalArgumentException("--data " + src.describe() + ": " + p.description() + " is empty; add images or change --holdout");
        }
        return new TrainSplit(parts[0].dataset(trainCrop()), parts[1].dataset(evalCrop()));
    }
}
