package ai.bonsai.dsp.group;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The reference's seven-argument constructor works and draws its noise from the documented default seed. */
class GroupWrapperReferenceSignatureTest {
    @Test
    void sevenArgumentsGiveTheDefaultSeededWrapper() {
        PrintStream old = System.out;
        try {
            System.setOut(new PrintStream(new ByteArrayOutputStream()));
            CifarResNet a = new CifarResNet(8, 10, new Generator(1)), b = new CifarResNet(8, 10, new Generator(1));
            GroupWrapper ga = new GroupWrapper(a, new SGD(a.parameters(), 0.1f, 0.9f, 1e-4f), Functional::crossEntropy, 2e-3f, 10, 4, 0.5f);
            GroupWrapper gb = new GroupWrapper(b, new SGD(b.parameters(), 0.1f, 0.9f, 1e-4f), Functional::crossEntropy, 2e-3f, 10, 4, 0.5f,
                    new Generator(GroupWrapper.DEFAULT_SEED));
            ga.initialize();
            gb.initialize();
            assertEquals(ga.layers().size(), gb.layers().size());
            for (int l = 0; l < ga.layers().size(); l++) {
                assertArrayEquals(gb.assignment(l).toFloatArray(), ga.assignment(l).toFloatArray(), "layer " + l);
            }
        } finally {
            System.setOut(old);
        }
    }
}
