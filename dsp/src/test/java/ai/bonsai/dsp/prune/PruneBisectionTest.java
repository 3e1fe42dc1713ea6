package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** initialize(rate): the bisection on beta reaches the requested pruned-FLOPs rate on ResNet-20 and ResNet-56. */
class PruneBisectionTest {

    @ParameterizedTest(name = "ResNet-{0}, G={1}, rate {2}")
    @CsvSource({"20, 4, 0.3", "20, 4, 0.5", "20, 2, 0.5", "56, 4, 0.3", "56, 4, 0.5", "56, 3, 0.5"})
    void bisectionHitsTheRequestedRate(int depth, int groups, double rate) {
        CifarResNet model = PruneFixtures.resnet(depth, 500 + depth);
        PruneWrapper pw = new PruneWrapper(model, groups, 2);
        PruneFixtures.randomGroups(pw, new Generator(600 + depth + groups));
        PruneRates r = pw.initialize(rate);
        assertEquals(100 * rate, r.prunedFlopsPercent(), 0.5, "pruned FLOPs % at beta " + pw.beta());
        assertTrue(r.prunedParamsPercent() > 0 && r.prunedParamsPercent() < 100, r.toString());
        // The returned rates describe the model as left: a fresh count agrees.
        PruneSummary s = pw.summary(false);
        assertEquals(r.prunedFlopsPercent(), s.prunedFlopsPercent(), 1e-9);
        assertEquals(r.prunedParamsPercent(), s.prunedParamsPercent(), 1e-9);
        assertEquals(pw.beta(), s.beta());
        assertTrue(pw.beta() > 0 && pw.beta() < 1, "beta " + pw.beta());
    }

    @ParameterizedTest
    @CsvSource({"20, 0.5"})
    void bisectionRestoresTheWeightsBetweenRounds(int depth, double rate) {
        // Pruning twice with the same beta from the same start must give the same model; initialize's final
        // model must therefore equal a single prune of the untouched model at the final beta.
        CifarResNet a = PruneFixtures.resnet(depth, 9), b = PruneFixtures.resnet(depth, 9);
        PruneWrapper pa = new PruneWrapper(a, 4, 2), pb = new PruneWrapper(b, 4, 2);
        PruneFixtures.randomGroups(pa, new Generator(10));
        PruneFixtures.randomGroups(pb, new Generator(10));
        pa.initialize(rate);
        pb.setBeta(pa.beta());
        pb.prune();
        Map<String, float[]> sa = PruneFixtures.snapshot(a), sb = PruneFixtures.snapshot(b);
        PruneFixtures.assertSameArrays(sb, sa);
    }
}
