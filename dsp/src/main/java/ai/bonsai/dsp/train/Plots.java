package ai.bonsai.dsp.train;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/** PNG charts of training curves, written with XChart (headless). */
public final class Plots {
    private Plots() {}

    /**
     * Writes a two-panel PNG: loss per epoch (train) on the left, accuracy per epoch (train and eval) on the
     * right. The file is written to a temporary name and moved into place, so a reader never sees half a PNG.
     */
    public static void trainingCurves(Path png, String title, List<Double> epochs, List<Double> trainLoss,
                                      List<Double> trainAcc, List<Double> evalAcc) {
        if (epochs.isEmpty()) return;
        XYChart loss = new XYChartBuilder().width(600).height(400).title(title + ": loss").xAxisTitle("epoch").yAxisTitle("cross-entropy").build();
        loss.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        loss.getStyler().setYAxisDecimalPattern("0.###");
        loss.addSeries("train loss", epochs, trainLoss);
        XYChart acc = new XYChartBuilder().width(600).height(400).title(title + ": accuracy").xAxisTitle("epoch").yAxisTitle("accuracy %").build();
        acc.getStyler().setLegendPosition(Styler.LegendPosition.InsideSE);
        acc.getStyler().setYAxisDecimalPattern("0.#");
        acc.addSeries("train", epochs, trainAcc);
        acc.addSeries("eval", epochs, evalAcc);
        java.awt.image.BufferedImage left = BitmapEncoder.getBufferedImage(loss), right = BitmapEncoder.getBufferedImage(acc);
        java.awt.image.BufferedImage both = new java.awt.image.BufferedImage(left.getWidth() + right.getWidth(),
                Math.max(left.getHeight(), right.getHeight()), java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = both.createGraphics();
        g.drawImage(left, 0, 0, null);
        g.drawImage(right, left.getWidth(), 0, null);
        g.dispose();
        writePng(png, both);
    }

    /**
     * Writes {@code image} as a PNG: to a temporary sibling first, then moved into place atomically, so a reader
     * (a browser refreshing the chart during a run) never sees half a file. Creates missing parent directories.
     */
    public static void writePng(Path png, java.awt.image.BufferedImage image) {
        try {
            if (png.toAbsolutePath().getParent() != null) Files.createDirectories(png.toAbsolutePath().getParent());
            Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
            if (!javax.imageio.ImageIO.write(image, "png", tmp.toFile())) throw new IOException("no PNG writer");
            ai.bonsai.io.CrashPoints.reached("plot", png);
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("plot " + png + ": " + e.getMessage(), e);
        }
    }
}
