package ai.bonsai.dsp.cli;

/** Runs bonsai pretrain in-process for tests in other packages. */
public final class CifarPretrainAccess {
    private CifarPretrainAccess() {}

    public static int run(String... args) { return Bonsai.execute(new CifarPretrain(), args); }
}
