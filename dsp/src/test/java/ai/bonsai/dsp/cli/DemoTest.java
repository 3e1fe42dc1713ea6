package ai.bonsai.dsp.cli;

import ai.bonsai.dsp.pack.PackedModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The README's main command, cut to seconds: every stage runs and the closing report is complete. */
class DemoTest {

    @Test
    void theWholePipelineRunsAndReports(@TempDir Path tmp) {
        CliTest.Run r = CliTest.run(new Demo(), "--save-dir", tmp.toString(), "--limit-train", "256", "--pretrain-epochs", "1",
                "--dsp-epochs", "1", "--finetune-epochs", "2", "--data", "synthetic");
        assertEquals(0, r.code(), r.err());
        String out = r.out();
        for (String s : new String[] {"== summary ==", "pretrain", "dsp (groups)", "pruned+tuned", "synthetic CIFAR-shaped data (not CIFAR-10)",
                "equivalence check", "== inference speed", "packed vs dense", "PackedModel.load(Path.of("}) {
            assertTrue(out.contains(s), "demo output lacks '" + s + "':\n" + out);
        }
        Path packed = tmp.resolve("resnet20_g4_p0.5.packed.safetensors");
        assertTrue(Files.exists(packed));
        PackedModel m = PackedModel.load(packed);
        assertTrue(m.macs() < m.denseMacs(), m.macs() + " vs " + m.denseMacs());
    }
}
