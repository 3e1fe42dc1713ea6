package ai.bonsai.dsp.export;

import ai.bonsai.cuda.EmulatedCuda;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** ONNX export reads the weights to the host, so a model on a CUDA device (emulated) exports exactly as on the CPU. */
class OnnxExportCudaEmulationTest {
    @Test void aModelOnTheDeviceExportsTheSameBytes() {
        try (EmulatedCuda gpu = EmulatedCuda.open(Device.cuda(5))) {
            CifarResNet cpu = new CifarResNet(8, 10, new Generator(4)), dev = new CifarResNet(8, 10, new Generator(4));
            dev.to(Device.cuda(5));
            Map<String, String> meta = Map.of("architecture", "cifar_resnet");
            assertArrayEquals(OnnxExport.dense(cpu, OnnxExport.Options.defaults(), meta).toByteArray(),
                    OnnxExport.dense(dev, OnnxExport.Options.defaults(), meta).toByteArray());
        }
    }
}
