package ai.bonsai.io.torch;

import ai.bonsai.tensor.DType;

/** The storage types a TorchScript archive may use here, with the pickle global that names each. */
public enum TorchDType {
    FLOAT32("FloatStorage", 4, DType.FLOAT32),
    INT64("LongStorage", 8, DType.INT64);

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

    /** The Bonsai dtype a tensor of this type becomes. */
    public DType bonsai() { return bonsai; }

    /** The type whose storage class is {@code name}, or null. */
    static TorchDType ofStorageClass(String name) {
        for (TorchDType t : values()) if (t.storageClass.equals(name)) return t;
        return null;
    }
}
