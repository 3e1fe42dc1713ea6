package ai.bonsai.io.torch;

import ai.bonsai.tensor.DType;

/**
 * The storage types a TorchScript archive or a {@code torch.save} state dict may use here, with the pickle global
 * that names each. FLOAT64, FLOAT16 and BFLOAT16 exist because state dicts are saved in those precisions too; they
 * become FLOAT32 tensors (Bonsai computes in float32 only), rounding float64 to nearest.
 */
public enum TorchDType {
    FLOAT32("FloatStorage", 4, DType.FLOAT32),
    INT64("LongStorage", 8, DType.INT64),
    FLOAT64("DoubleStorage", 8, DType.FLOAT32),
    FLOAT16("HalfStorage", 2, DType.FLOAT32),
    BFLOAT16("BFloat16Storage", 2, DType.FLOAT32);

    private final String storageClass;
    private final int bytes;
    private final DType bonsai;

    TorchDType(String storageClass, int bytes, DType bonsai) {
        this.storageClass = storageClass;
        this.bytes = bytes;
        this.bonsai = bonsai;
    }

    /** The class name in {@code torch.<name>} that a persistent id uses for this type. */
    public String storageClass() { return storageClass; }

    /** Bytes per element. */
    public int bytes() { return bytes; }

    /** Whether this is a floating-point type (read as float32). */
    public boolean isFloating() { return this != INT64; }

    /** The Bonsai dtype a tensor of this type becomes. */
    public DType bonsai() { return bonsai; }

    /** The type whose storage class is {@code name}, or null. */
    static TorchDType ofStorageClass(String name) {
        for (TorchDType t : values()) if (t.storageClass.equals(name)) return t;
        return null;
    }
}
