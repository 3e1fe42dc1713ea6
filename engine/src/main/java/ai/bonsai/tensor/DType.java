package ai.bonsai.tensor;

/** Element types. Float32 carries all activations and parameters; the integer types carry indices. */
public enum DType {
    FLOAT32(4), INT32(4), INT64(8);

    private final int bytes;

    DType(int bytes) { this.bytes = bytes; }

    public int bytes() { return bytes; }
}
