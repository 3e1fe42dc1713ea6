/**
 * Training data as plain Java arrays, independent of the tensor classes: the CIFAR-10 binary reader
 * ({@link ai.bonsai.data.Cifar10}) and its downloader ({@link ai.bonsai.data.Cifar10Download}), a procedurally
 * generated stand-in that is clearly not CIFAR-10 ({@link ai.bonsai.data.SyntheticCifar}), augmentation and
 * normalisation ({@link ai.bonsai.data.Transform}), and a deterministic, prefetching batch loader
 * ({@link ai.bonsai.data.DataLoader}) that yields {@link ai.bonsai.data.ImageBatch}es of NCHW floats and long labels.
 * Images in files: {@link ai.bonsai.data.ImageFolder} (torchvision's root/&lt;class&gt;/&lt;image&gt; layout, or a list
 * file), decoded with ImageIO on the loader's worker threads and brought to a fixed size by an
 * {@link ai.bonsai.data.ImageCrop} (RandomResizedCrop, or resize then center crop) with antialiased bilinear
 * resampling; an image that does not decode is reported and skipped ({@link ai.bonsai.data.UnreadableExampleException}).
 *
 * <p>Every random choice derives from a seed through {@link ai.bonsai.tensor.Generator}, keyed by position
 * (epoch, batch, example), so results do not depend on thread scheduling and resuming needs no saved state
 * beyond the seed and the position.
 */
package ai.bonsai.data;
