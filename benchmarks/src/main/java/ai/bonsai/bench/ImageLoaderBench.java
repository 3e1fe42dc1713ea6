package ai.bonsai.bench;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.ImageBatch;
import ai.bonsai.data.ImageCrop;
import ai.bonsai.data.ImageFolder;
import ai.bonsai.data.Transform;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Images per second that the data loader decodes and transforms from an image folder, the figure to set beside a
 * training step's images/s: generated 500x375 JPEGs (ImageNet's typical size; smooth gradients plus noise, quality
 * 0.9) read through {@link ImageFolder} and {@link DataLoader} with {@code threads} worker threads, either
 * {@code train} (RandomResizedCrop 224 + flip + normalise) or {@code eval} (resize 256, center crop 224, normalise).
 * One operation is one image (a whole epoch of {@value #IMAGES} images per invocation).
 * Run: {@code benchmarks/run ImageLoaderBench -f 1 -wi 2 -i 5 -w 2 -r 2}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx2g"})
public class ImageLoaderBench {
    static final int IMAGES = 64;

    @Param({"1", "2"})
    public int threads;

    @Param({"train", "eval"})
    public String pipeline;

    private Path root;
    private DataLoader loader;
    private int epoch;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        root = Files.createTempDirectory("bonsai-imageloader-bench");
        java.util.Random rnd = new java.util.Random(3);
        for (int i = 0; i < IMAGES; i++) {
            Path dir = root.resolve("class" + (i % 4));
            Files.createDirectories(dir);
            BufferedImage img = new BufferedImage(500, 375, BufferedImage.TYPE_3BYTE_BGR);
            for (int y = 0; y < 375; y++) {
                for (int x = 0; x < 500; x++) {
                    int r = (x * 255 / 500 + rnd.nextInt(24)) & 0xff, g = (y * 255 / 375 + rnd.nextInt(24)) & 0xff, b = ((x + y + i * 7) & 0xff);
                    img.setRGB(x, y, (r << 16) | (g << 8) | b);
                }
            }
            if (!ImageIO.write(img, "jpg", dir.resolve(String.format("img%03d.jpg", i)).toFile())) throw new IllegalStateException("no JPEG writer");
        }
        boolean train = pipeline.equals("train");
        ai.bonsai.data.Dataset folder = ImageFolder.open(root).dataset(train ? ImageCrop.randomResized(224) : ImageCrop.resizeCenter(256, 224));
        loader = DataLoader.builder(folder).batchSize(16).shuffle(train).seed(1).workers(threads).prefetch(2 * threads)
                .transform(train ? Transform.imagenetTrain() : Transform.imagenetEval()).build();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        loader.close();
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }

    /** One epoch of {@value #IMAGES} images; checks that every image arrived, with (3, 224, 224) floats. */
    @Benchmark
    @OperationsPerInvocation(IMAGES)
    public double epoch() {
        int seen = 0;
        double sum = 0;
        for (ImageBatch b : loader.epoch(epoch++)) {
            if (b.shape().dim(2) != 224 || b.shape().dim(3) != 224) throw new IllegalStateException("unexpected batch shape " + b.shape());
            seen += b.n();
            sum += b.images()[0];
        }
        if (seen != IMAGES) throw new IllegalStateException("an epoch gave " + seen + " images, expected " + IMAGES);
        return sum;
    }
}
