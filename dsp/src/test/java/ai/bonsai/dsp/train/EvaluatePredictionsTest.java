package ai.bonsai.dsp.train;

import ai.bonsai.backend.StepArena;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.Dataset;
import ai.bonsai.data.SyntheticCifar;
import ai.bonsai.data.Transform;
import ai.bonsai.data.UnreadableExampleException;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Shape;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Trainer.evaluate's predictions stay in dataset order when the loader skips unreadable images, and evaluation never
 * allocates from a StepArena (which would keep a whole no-grad forward pass alive until the batch ends).
 */
class EvaluatePredictionsTest {
    @Test void skippedImagesLeaveTheirSlotAndTheOthersKeepTheirPlace() {
        SyntheticCifar data = new SyntheticCifar(3, 11);
        Set<Integer> bad = Set.of(0, 4, 5);
        Dataset withBad = new Dataset() {
            @Override public int size() { return data.size(); }
            @Override public Shape imageShape() { return data.imageShape(); }
            @Override public int numClasses() { return data.numClasses(); }
            @Override public int label(int i) { return data.label(i); }
            @Override public void image(int i, float[] dst, int offset) {
                if (bad.contains(i)) throw new UnreadableExampleException("img" + i + ".jpg", "cannot be decoded (test)", null);
                data.image(i, dst, offset);
            }
            @Override public String description() { return "synthetic with unreadable images"; }
        };
        CifarResNet model = new CifarResNet(8, 10, new Generator(1));
        int[] all = new int[11], some = new int[11];
        Arrays.fill(some, -1);
        Trainer.EpochStats full, skipping;
        try (DataLoader a = DataLoader.builder(data).batchSize(3).transform(Transform.cifarEval()).build();
             DataLoader b = DataLoader.builder(withBad).batchSize(3).transform(Transform.cifarEval()).build()) {
            full = Trainer.evaluate(model, a, Device.cpu(), all);
            skipping = Trainer.evaluate(model, b, Device.cpu(), some);
        }
        assertEquals(11, full.images());
        assertEquals(8, skipping.images());
        for (int i = 0; i < 11; i++) {
            if (bad.contains(i)) assertEquals(-1, some[i], "skipped image " + i + " keeps the caller's value");
            else assertEquals(all[i], some[i], "image " + i + " keeps its place");
        }
    }

    @Test void evaluationRunsOutsideAnyStepArenaEvenInsideACallersScope() {
        SyntheticCifar data = new SyntheticCifar(3, 7);
        CifarResNet net = new CifarResNet(8, 10, new Generator(2));
        List<StepArena> seen = new ArrayList<>();
        Module probe = new Module() {
            @Override public Tensor forward(Tensor x) {
                seen.add(StepArena.current());
                return net.forward(x);
            }
        };
        StepArena caller = new StepArena();
        Trainer.EpochStats r;
        try (DataLoader loader = DataLoader.builder(data).batchSize(3).transform(Transform.cifarEval()).build();
             var scope = caller.open()) {
            r = Trainer.evaluate(probe, loader, Device.cpu());
            assertSame(caller, StepArena.current(), "the caller's scope is current again afterwards");
        }
        assertEquals(7, r.images());
        assertEquals(3, seen.size(), "one forward per batch");
        for (StepArena a : seen) assertNull(a, "evaluation allocated from a StepArena");
        assertEquals(0, caller.allocated() + caller.reused(), "nothing of the evaluation went to the caller's arena");
    }

    /**
     * Between epochs the trainer evaluates with its steps' buffers: at the training batch size the inference forward
     * passes take every buffer from the arena (none allocated), and the results equal an evaluation that allocates
     * afresh. The arena's poisoning (on in every test JVM) makes any read of a buffer after its batch fail.
     */
    @Test void theTrainersEvaluationTakesItsBuffersFromTheStepArena() {
        SyntheticCifar data = new SyntheticCifar(4, 12);
        CifarResNet net = new CifarResNet(8, 10, new Generator(3));
        Trainer trainer = new Trainer(net, new ai.bonsai.optim.SGD(net.parameters(), 0.01f, 0.9f, 0f, 0f, false), Device.cpu(), 0f, Trainer.Hooks.NONE);
        try (DataLoader train = DataLoader.builder(data).batchSize(4).transform(Transform.cifarTrain()).seed(1).shuffle(true).build();
             DataLoader eval = DataLoader.builder(data).batchSize(4).transform(Transform.cifarEval()).build()) {
            trainer.trainEpoch(train, 0, "test", 0);
            long allocated = trainer.arena().allocated(), reused = trainer.arena().reused();
            Trainer.EpochStats inArena = trainer.evaluate(eval);
            assertEquals(allocated, trainer.arena().allocated(), "evaluation allocated buffers beyond the training step's");
            assertTrue(trainer.arena().reused() > reused + 3 * 10, "three forward passes took their buffers from the arena");
            Trainer.EpochStats afresh = Trainer.evaluate(net, eval, Device.cpu());
            assertEquals(afresh.loss(), inArena.loss());
            assertEquals(afresh.accuracy(), inArena.accuracy());
            assertEquals(12, inArena.images());
            assertTrue(net.isTraining(), "the model is back in training mode");
        }
    }
}
