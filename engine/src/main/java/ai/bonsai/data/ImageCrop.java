package ai.bonsai.data;

import ai.bonsai.tensor.Generator;

/**
 * The geometric part of the standard ImageNet transforms: turns a decoded image of any size into a fixed
 * {@code size} x {@code size} one. Training uses {@link #randomResized} (torchvision's RandomResizedCrop), evaluation
 * {@link #resizeCenter} (Resize(resize) then CenterCrop(size)). Both resample with {@link Resample}'s antialiased
 * bilinear filter. Flip and normalisation come after, as {@link Transform}s on the fixed-size floats
 * ({@link Transform#imagenetTrain()}, {@link Transform#imagenetEval()}).
 *
 * <p>Randomness comes only from the generator passed in, so the loader's (seed, epoch, batch) streams make crops
 * deterministic.
 */
public interface ImageCrop {
    /** Side of the square output. */
    int size();

    /**
     * Writes the (c, size, size) output for the (c, h, w) image {@code src} into {@code dst} at {@code offset}.
     */
    void apply(float[] src, int c, int h, int w, float[] dst, int offset, Generator rng);

    /** RandomResizedCrop(size) with torchvision's defaults: scale 0.08-1, ratio 3/4-4/3. */
    static ImageCrop randomResized(int size) {
        return new RandomResized(size, 0.08, 1.0, 3.0 / 4, 4.0 / 3);
    }

    /** Resize(resize) of the short side, then CenterCrop(size): 256 and 224 for ImageNet. */
    static ImageCrop resizeCenter(int resize, int size) {
        return new ResizeCenter(resize, size);
    }

    /**
     * torchvision's RandomResizedCrop: up to 10 attempts at a box of area scale * (h * w) and aspect ratio
     * exp(uniform(log ratio)), placed uniformly; after 10 misses, a center crop clamped to the ratio range. The box
     * is then resized to size x size.
     */
    record RandomResized(int size, double minScale, double maxScale, double minRatio, double maxRatio) implements ImageCrop {
        public RandomResized {
            if (size < 1) throw new IllegalArgumentException("randomResized: size must be positive, got " + size);
            if (!(0 < minScale && minScale <= maxScale)) throw new IllegalArgumentException("randomResized: scale range must satisfy 0 < min <= max, got " + minScale + ".." + maxScale);
            if (!(0 < minRatio && minRatio <= maxRatio)) throw new IllegalArgumentException("randomResized: ratio range must satisfy 0 < min <= max, got " + minRatio + ".." + maxRatio);
        }

        /** (top, left, height, width) of the box, as torchvision's get_params; draws from {@code rng}. */
        public int[] box(int h, int w, Generator rng) {
            double area = (double) h * w;
            double logMin = Math.log(minRatio), logMax = Math.log(maxRatio);
            for (int attempt = 0; attempt < 10; attempt++) {
                double targetArea = area * (minScale + (maxScale - minScale) * rng.nextDouble());
                double aspect = Math.exp(logMin + (logMax - logMin) * rng.nextDouble());
                int cw = (int) Math.rint(Math.sqrt(targetArea * aspect));   // Python's round: half to even
                int ch = (int) Math.rint(Math.sqrt(targetArea / aspect));
                if (0 < cw && cw <= w && 0 < ch && ch <= h) {
                    int top = rng.nextInt(h - ch + 1);
                    int left = rng.nextInt(w - cw + 1);
                    return new int[] {top, left, ch, cw};
                }
            }
            double inRatio = (double) w / h;
            int cw, ch;
            if (inRatio < minRatio) {
                cw = w;
                ch = (int) Math.rint(cw / minRatio);
            } else if (inRatio > maxRatio) {
                ch = h;
                cw = (int) Math.rint(ch * maxRatio);
            } else {
                cw = w;
                ch = h;
            }
            ch = Math.max(1, Math.min(ch, h));
            cw = Math.max(1, Math.min(cw, w));
            return new int[] {(h - ch) / 2, (w - cw) / 2, ch, cw};
        }

        @Override public void apply(float[] src, int c, int h, int w, float[] dst, int offset, Generator rng) {
            int[] b = box(h, w, rng);
            Resample.resize(src, c, h, w, b[1], b[0], b[3], b[2], size, size, 0, 0, size, size, dst, offset);
        }
    }

    /**
     * Resize(resize): the short side becomes {@code resize}, the long side {@code (int) (resize * long / short)}
     * (torchvision's rule); then CenterCrop(size) at top = round((H - size) / 2), zero padding where the resized image
     * is smaller than the crop. Only the cropped pixels are computed.
     */
    record ResizeCenter(int resize, int size) implements ImageCrop {
        public ResizeCenter {
            if (resize < 1 || size < 1) throw new IllegalArgumentException("resizeCenter: sizes must be positive, got resize " + resize + ", crop " + size);
        }

        /** (height, width) of the resized image. */
        public int[] resized(int h, int w) {
            if (h <= w) return new int[] {resize, (int) ((long) resize * w / h)};
            return new int[] {(int) ((long) resize * h / w), resize};
        }

        @Override public void apply(float[] src, int c, int h, int w, float[] dst, int offset, Generator rng) {
            int[] r = resized(h, w);
            int rh = r[0], rw = r[1];
            // torchvision's CenterCrop: pad (crop - size) // 2 before when the image is smaller, then round half to even.
            int padTop = size > rh ? (size - rh) / 2 : 0, padLeft = size > rw ? (size - rw) / 2 : 0;
            int top = size > rh ? 0 : (int) Math.rint((rh - size) / 2.0);
            int left = size > rw ? 0 : (int) Math.rint((rw - size) / 2.0);
            int oh = Math.min(size, rh), ow = Math.min(size, rw);
            if (oh == size && ow == size) {
                Resample.resize(src, c, h, w, 0, 0, w, h, rw, rh, left, top, size, size, dst, offset);
                return;
            }
            float[] win = new float[c * oh * ow];
            Resample.resize(src, c, h, w, 0, 0, w, h, rw, rh, left, top, ow, oh, win, 0);
            java.util.Arrays.fill(dst, offset, offset + c * size * size, 0f);
            for (int ch = 0; ch < c; ch++) {
                for (int y = 0; y < oh; y++) {
                    System.arraycopy(win, (ch * oh + y) * ow, dst, offset + (ch * size + y + padTop) * size + padLeft, ow);
                }
            }
        }
    }
}
