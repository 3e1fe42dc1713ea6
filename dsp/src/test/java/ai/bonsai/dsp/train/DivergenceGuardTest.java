package ai.bonsai.dsp.train;

import ai.bonsai.data.DataLoader;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.TrainSplit;
import ai.bonsai.data.Transform;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Flatten;
import ai.bonsai.nn.Linear;
import ai.bonsai.nn.ReLU;
import ai.bonsai.nn.Sequential;
import ai.bonsai.optim.LambdaLR;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The divergence guard: a run whose learning rate jumps from 0.01 to 1e12 (or infinity) after its first epoch. With stop, the run ends
 * with one message naming epoch, step, tensor and learning rate, and the checkpoints of epoch 1 are untouched; with
 * skip-step, every diverging update is dropped (the weights stay those of epoch 1, bit for bit) until it gives up.
 */
class DivergenceGuardTest {
    record Setup(Sequential model, SGD sgd, LrScheduler sched, DataLoader train, DataLoader eval) {}

    private static Setup setup(double jump) {
        TrainSplit data = SyntheticCifar.forTraining(5, 96, 32);
        Generator g = new Generator(7);
        Sequential model = new Sequential(new Flatten(), new Linear(3 * 32 * 32, 32, g), new ReLU(), new Linear(32, 10, g));
        SGD sgd = new SGD(model.parameters(), 0.01f, 0.9f, 0f, 0f, false);
        LrScheduler sched = new LrScheduler(sgd, new LambdaLR(e -> e < 1 ? 1 : jump));
        DataLoader train = DataLoader.builder(data.train()).batchSize(16).dropLast(true).shuffle(true).seed(1).transform(Transform.cifarEval()).build();
        DataLoader eval = DataLoader.builder(data.heldOut()).batchSize(32).transform(Transform.cifarEval()).build();
        return new Setup(model, sgd, sched, train, eval);
    }

    private static NonFiniteException diverge(Path dir, NonFinitePolicy policy, int maxSkips, Setup s) {
        TrainingRun run = new TrainingRun(new TrainingRun.Config("toy", dir, 3, 1, false, false, Device.cpu(), Map.of(), 3), System.out)
                .onNonFinite(policy, maxSkips);
        return assertThrows(NonFiniteException.class, () -> run.run(s.model(), s.sgd(), s.sched(),
                new Trainer(s.model(), s.sgd(), Device.cpu(), 0f, Trainer.Hooks.NONE), s.train(), s.eval(), TrainingRun.Extra.NONE));
    }

    @Test
    void stopNamesWhereAndKeepsTheGoodCheckpoints(@TempDir Path tmp) throws Exception {
        NonFiniteException e = diverge(tmp, NonFinitePolicy.STOP, 5, setup(1e14));
        String m = e.getMessage();
        assertTrue(m.startsWith("toy: non-finite value in epoch 2, step "), m);
        assertTrue(m.contains("the first non-finite tensor is "), m);
        assertTrue(m.contains("learning rate 1.0E12") || m.contains("learning rate 9.99"), m);   // 0.01 x 1e14 in float
        assertTrue(m.contains(tmp.resolve("toy.last.safetensors") + " (resume)") && m.contains("toy.safetensors (best)"), m);
        // The checkpoints are epoch 1's, whole and finite.
        for (String f : new String[] {"toy.last.safetensors", "toy.safetensors"}) {
            Checkpoint ck = Checkpoint.load(tmp.resolve(f));
            assertEquals(1, ck.requireInt("epoch"), f);
            for (Map.Entry<String, Tensor> t : ck.tensors().entrySet()) {
                float[] v = t.getValue().toFloatArray();
                for (float x : v) assertTrue(Float.isFinite(x), f + " " + t.getKey());
            }
        }
        assertEquals(1, Files.readAllLines(tmp.resolve("toy.metrics.jsonl")).stream().filter(l -> l.contains("\"event\":\"epoch\"")).count());
    }

    @Test
    void skipStepDropsEachUpdateThenGivesUp(@TempDir Path tmp) {
        // Epoch 2's first two steps at lr 1e12 stay finite (huge weights); from step 3 on the loss is NaN.
        Setup once = setup(1e14), thrice = setup(1e14);
        NonFiniteException e1 = diverge(tmp.resolve("1"), NonFinitePolicy.SKIP_STEP, 1, once);
        assertTrue(e1.getMessage().startsWith("toy: gave up after 1 consecutive skipped steps (--max-skips 1); the last: non-finite value in "
                + "epoch 2, step 3 of 6: the first non-finite tensor is the loss (NaN); learning rate 1.0E12"), e1.getMessage());
        NonFiniteException e3 = diverge(tmp.resolve("3"), NonFinitePolicy.SKIP_STEP, 3, thrice);
        assertTrue(e3.getMessage().startsWith("toy: gave up after 3 consecutive skipped steps (--max-skips 3); the last: non-finite value in "
                + "epoch 2, step 5 of 6: the first non-finite tensor is the loss (NaN)"), e3.getMessage());
        // Steps 3, 4 and 5 were all dropped: both models hold the state after step 2, bit for bit, finite, momentum included.
        Map<String, Tensor> a = once.model().stateDict(), b = thrice.model().stateDict();
        for (String k : a.keySet()) {
            assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), k);
            for (float x : b.get(k).toFloatArray()) assertTrue(Float.isFinite(x), k);
        }
        Map<String, Tensor> oa = once.sgd().stateDict(), ob = thrice.sgd().stateDict();
        assertEquals(oa.keySet(), ob.keySet());
        for (String k : oa.keySet()) assertTrue(Arrays.equals(oa.get(k).toFloatArray(), ob.get(k).toFloatArray()), k);
        // The checkpoints on disk are still epoch 1's.
        assertEquals(1, Checkpoint.load(tmp.resolve("3").resolve("toy.last.safetensors")).requireInt("epoch"));
    }

    @Test
    void badPolicyAndSkipCountAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NonFinitePolicy.parse("ignore"));
        assertEquals("--on-nonfinite: expected stop or skip-step, got 'ignore'", e.getMessage());
        Setup s = setup(1);
        IllegalArgumentException k = assertThrows(IllegalArgumentException.class,
                () -> new Trainer(s.model(), s.sgd(), Device.cpu(), 0f, null).onNonFinite(NonFinitePolicy.SKIP_STEP, 0));
        assertEquals("--max-skips: expected a positive number, got 0", k.getMessage());
    }
}
