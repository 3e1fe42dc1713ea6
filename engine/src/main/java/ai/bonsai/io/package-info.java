/**
 * Files Bonsai reads and writes: checkpoints in the safetensors format ({@link ai.bonsai.io.SafeTensors}),
 * as lists of {@link ai.bonsai.io.NamedArray}s. Writes are atomic; reads treat the file as untrusted.
 */
package ai.bonsai.io;
