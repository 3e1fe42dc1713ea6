package ai.bonsai.tensor;

import ai.bonsai.backend.Backend;

/**
 * A flat block of memory owned by one backend. It has a length and an element type, but no shape:
 * shapes belong to {@link Tensor}. Only the owning backend reads or writes the memory.
 */
public interface Buffer {
    Backend backend();

    DType dtype();

    /** Number of elements. */
    int length();
}
