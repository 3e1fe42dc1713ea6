package ai.bonsai.dsp.cli;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.data.Transform;
import ai.bonsai.dsp.imports.PackedResNet;
import ai.bonsai.dsp.imports.PackedResNetForward;
import ai.bonsai.dsp.imports.PackedResNetStats;
import ai.bonsai.dsp.imports.TorchPackedImporter;
import ai.bonsai.dsp.train.Trainer;
import ai.bonsai.tensor.Device;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The {@code .pt} path of {@code bonsai eval}: imports a published packed DSP CIFAR ResNet (TorchScript) with
 * {@link TorchPackedImporter}, evaluates it with the reference forward {@link PackedResNetForward} under the
 * same data options as {@link Evaluate}, and reports the pruning figures of {@link PackedResNetStats}.
 */
final class EvaluateTorch {
    private final Evaluate options;

    EvaluateTorch(Evaluate options) { this.options = options; }

    /** True for TorchScript archives, recognised by the .pt / .pth extension. */
    static boolean handles(Path ckpt) {
        String n = ckpt.getFileName().toString().toLowerCase(Locale.ROOT);
        return n.endsWith(".pt") || n.endsWith(".pth");
    }

    int run(Device dev, PrintStream log) {
        PackedResNet net;
        try {
            net = TorchPackedImporter.read(options.ckpt);
        } catch (IOException e) {
            throw new UncheckedIOException("--ckpt " + options.ckpt + ": " + e.getMessage(), e);
        }
        PackedResNetStats stats = PackedResNetStats.of(net);
        Dataset ds = options.dataset(log);
        int[] pred = new int[ds.size()];
        Trainer.EpochStats r;
        try (DataLoader loader = DataLoader.builder(ds).batchSize(options.batchSize).transform(Transform.cifarEval()).build()) {
            r = Trainer.evaluate(new PackedResNetForward(net, dev), loader, dev, pred);
        }
        if (options.predictions != null) Evaluate.writePredictions(options.predictions, pred);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("accuracy", r.accuracy());
        out.put("images", r.images());
        out.put("loss", r.loss());
        out.put("prunedFlopsPercent", stats.prunedFlopsPercent());
        out.put("prunedParamsPercent", stats.prunedParamsPercent());
        out.put("macs", stats.macs());
        out.put("denseMacs", stats.denseMacs());
        out.put("params", stats.params());
        out.put("denseParams", stats.denseParams());
        out.put("prunableMacs", stats.prunableMacs());
        out.put("densePrunableMacs", stats.densePrunableMacs());
        out.put("prunableParams", stats.prunableParams());
        out.put("densePrunableParams", stats.densePrunableParams());
        out.put("architecture", "packed_resnet" + (2 * net.blocks().size() + 2));   // two convs per block, stem and classifier
        out.put("blocks", net.blocks().size());
        out.put("checkpoint", options.ckpt.toAbsolutePath().toString());
        out.put("data", ds.description());
        if (options.json) {
            try {
                System.out.println(new ObjectMapper().writeValueAsString(out));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            System.out.print(PackedResNetStats.report(net));
            System.out.printf("data: %s%n", ds.description());
            System.out.printf("accuracy %.3f%% on %d images (loss %.4f)%n", r.accuracy(), r.images(), r.loss());
            if (options.predictions != null) System.out.println("predictions: " + options.predictions.toAbsolutePath());
        }
        return 0;
    }
}
