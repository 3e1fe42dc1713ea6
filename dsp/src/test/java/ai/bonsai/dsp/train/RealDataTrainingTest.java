package ai.bonsai.dsp.train;

import ai.bonsai.dsp.cli.CifarPretrainAccess;
import ai.bonsai.dsp.testing.SharedData;
import ai.bonsai.io.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A short ResNet-20 run on real CIFAR-10 images (the shared 4,000-image sample) clearly learns. */
class RealDataTrainingTest {

    @Test
    void resnet20LearnsOnRealImages(@TempDir Path tmp) {
        Path data = SharedData.require("data/cifar10/first4000_of_data_batch_1.bin");
        // 3,600 training images (the last 10 % of the file are held out), 4 epochs.
        int rc = CifarPretrainAccess.run("--data", data.toString(), "--epochs", "4", "--save-dir", tmp.toString(),
                "--seed", "7", "--batch-size", "64", "--lr", "0.1");
        assertEquals(0, rc);
        Checkpoint best = Checkpoint.load(tmp.resolve("resnet20.safetensors"));
        double acc = Double.parseDouble(best.require("bestAccuracy"));
        // Chance is 10 %; the 400 held-out images are real CIFAR-10 the model never saw.
        assertTrue(acc > 25, "held-out accuracy " + acc + "% after 4 epochs");
        assertTrue(best.require("data").contains("first4000_of_data_batch_1.bin"), best.metadata().toString());
    }
}
