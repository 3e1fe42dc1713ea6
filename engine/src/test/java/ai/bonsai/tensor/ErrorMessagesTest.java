package ai.bonsai.tensor;

import ai.bonsai.nn.Functional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input is rejected at the boundary with a message naming the op and the shapes involved. */
class ErrorMessagesTest {

    static void expect(Executable call, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        for (String p : parts) assertTrue(e.getMessage().contains(p), "message '" + e.getMessage() + "' lacks '" + p + "'");
    }

    @Test
    void elementwiseShapesThatDoNotBroadcast() {
        expect(() -> Tensor.zeros(2, 3).add(Tensor.zeros(4)), "add", "[2, 3]", "[4]");
        expect(() -> Tensor.zeros(2, 3).mul(Tensor.zeros(3, 2)), "mul", "[2, 3]", "[3, 2]");
        expect(() -> Tensor.zeros(2, 3).addi(Tensor.zeros(4, 2, 3)), "addi", "[2, 3]");
    }

    @Test
    void matMulAndLinear() {
        expect(() -> Tensor.zeros(2, 3).matMul(Tensor.zeros(4, 5)), "matMul", "[2, 3]", "[4, 5]");
        expect(() -> Tensor.zeros(2).matMul(Tensor.zeros(2, 5)), "matMul", "[2]", "[2, 5]");
        expect(() -> Functional.linear(Tensor.zeros(8, 3), Tensor.zeros(10, 4), null), "linear", "[8, 3]", "[10, 4]");
    }

    @Test
    void convolution() {
        expect(() -> Functional.conv2d(Tensor.zeros(1, 3, 8, 8), Tensor.zeros(4, 2, 3, 3), null, 1, 1, 1), "conv2d", "[1, 3, 8, 8]", "[4, 2, 3, 3]");
        expect(() -> Functional.conv2d(Tensor.zeros(3, 8, 8), Tensor.zeros(4, 3, 3, 3), null, 1, 1, 1), "conv2d", "[3, 8, 8]");
        expect(() -> Functional.conv2d(Tensor.zeros(1, 3, 2, 2), Tensor.zeros(4, 3, 5, 5), null, 1, 0, 1), "conv2d", "kernel 5x5");
        expect(() -> Functional.conv2d(Tensor.zeros(1, 3, 8, 8), Tensor.zeros(4, 3, 3, 3), Tensor.zeros(5), 1, 1, 1), "conv2d", "bias", "[5]");
    }

    @Test
    void shapeOps() {
        expect(() -> Tensor.zeros(2, 3).reshape(4, 2), "reshape", "[2, 3]", "[4, 2]");
        expect(() -> Tensor.zeros(2, 3).permute(0, 0), "permute", "[2, 3]");
        expect(() -> Tensor.zeros(2, 3).slice(1, 2, 7, 0), "slice", "[2, 3]");
        expect(() -> Tensor.cat(0, Tensor.zeros(2, 3), Tensor.zeros(2, 4)), "cat", "[2, 3]", "[2, 4]");
        expect(() -> Tensor.zeros(2, 3).sum(new int[] {2}, false), "sum", "axis 2", "[2, 3]");
        expect(() -> Tensor.of(new float[] {1, 2, 3}, 2, 2), "3 values", "[2, 2]");
    }

    @Test
    void lossesAndGathers() {
        expect(() -> Functional.crossEntropy(Tensor.zeros(4, 10), Tensor.ofLongs(new long[] {1, 2, 3}, 3)), "crossEntropy", "[3]");
        expect(() -> Functional.crossEntropy(Tensor.zeros(2, 10), Tensor.ofLongs(new long[] {1, 10}, 2)), "crossEntropy", "target 10", "position 1");
        expect(() -> Functional.indexSelect(Tensor.zeros(2, 3), 1, Tensor.ofLongs(new long[] {3}, 1)), "indexSelect", "index 3", "[2, 3]");
        expect(() -> Functional.indexSelect(Tensor.zeros(2, 3), 1, Tensor.zeros(1)), "indexSelect", "FLOAT32");
        expect(() -> Functional.batchNorm(Tensor.zeros(2, 3, 4, 4), Tensor.zeros(4), Tensor.ones(4), Tensor.ones(4), Tensor.zeros(4), true, 0.1f, 1e-5f),
                "batchNorm", "[2, 3, 4, 4]", "3 channels");
    }
}
