package ai.bonsai.dsp.train;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.data.Transform;
import ai.bonsai.nn.Flatten;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.Sequential;
import ai.bonsai.optim.LambdaLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Which epoch becomes the best: strictly higher accuracy (pretrain, dsp), or equal accuracy too (finetune). */
class TrainingRunBestTest {

    /** A run whose model never changes (lr 0), so every epoch has the same accuracy; returns the best epoch. */
    private static int bestEpochOfConstantRun(Path dir, boolean tieIsBest, int saveBestAfter) {
        return bestEpochOfConstantRun(dir, tieIsBest, saveBestAfter, System.out);
    }

    private static int bestEpochOfConstantRun(Path dir, boolean tieIsBest, int saveBestAfter, java.io.PrintStream out) {
        TrainSplit data = SyntheticCifar.forTraining(2, 64, 32);
        Sequential model = new Sequential(new Flatten(), new Linear(3 * 32 * 32, 10, new Generator(3)));
        SGD sgd = new SGD(model.parameters(), 0f, 0f, 0f, 0f, false);
        LrScheduler sched = new LrScheduler(sgd, new LambdaLR(e -> 1));
        DataLoader train = DataLoader.builder(data.train()).batchSize(32).dropLast(true).transform(Transform.cifarEval()).build();
        DataLoader eval = DataLoader.builder(data.heldOut()).batchSize(32).transform(Transform.cifarEval()).build();
        TrainingRun run = new TrainingRun(new TrainingRun.Config("toy", dir, 4, saveBestAfter, tieIsBest, false, Device.cpu(), Map.of(), 4),
                out);
        TrainingRun.Result r = run.run(model, sgd, sched, new Trainer(model, sgd, Device.cpu(), 0f, Trainer.Hooks.NONE), train, eval,
                TrainingRun.Extra.NONE);
        return r.bestEpoch();
    }

    @Test
    void tiesGoToTheLaterEpochOnlyWhenAsked(@TempDir Path tmp) {
        assertEquals(1, bestEpochOfConstantRun(tmp.resolve("strict"), false, 1), "pretrain and dsp keep the first of equals");
        assertEquals(4, bestEpochOfConstantRun(tmp.resolve("ties"), true, 1), "finetune takes the latest of equals (<=)");
        assertEquals(3, bestEpochOfConstantRun(tmp.resolve("after"), false, 3), "no epoch before saveBestAfter is best");
    }

    /** The run's summary and the metrics' end event carry the peak RSS where /proc reports it, and nothing where not. */
    @Test
    void summaryAndEndEventReportPeakRss(@TempDir Path tmp) throws Exception {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        bestEpochOfConstantRun(tmp, false, 1, new java.io.PrintStream(bytes, true, java.nio.charset.StandardCharsets.UTF_8));
        String printed = bytes.toString(java.nio.charset.StandardCharsets.UTF_8);
        java.util.List<String> lines = java.nio.file.Files.readAllLines(tmp.resolve("toy.metrics.jsonl"));
        com.fasterxml.jackson.databind.JsonNode end = new com.fasterxml.jackson.databind.ObjectMapper().readTree(lines.get(lines.size() - 1));
        assertEquals("end", end.get("event").asText());
        if (PeakMemory.peakRssBytes().isPresent()) {
            org.junit.jupiter.api.Assertions.assertTrue(end.get("peakRssMiB").asLong() > 0, end.toString());
            org.junit.jupiter.api.Assertions.assertTrue(printed.contains("peak memory: "), printed);
        } else {
            org.junit.jupiter.api.Assertions.assertFalse(end.has("peakRssMiB"), end.toString());
            org.junit.jupiter.api.Assertions.assertFalse(printed.contains("peak memory"), printed);
        }
    }
}
