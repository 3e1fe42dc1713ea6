package ai.bonsai.backend;

import ai.bonsai.backend.cpu.CpuBackend;

/** The backend suite on the CPU backend (the embedded default). */
class CpuBackendSuiteTest extends BackendSuite {
    @Override protected Backend backend() { return CpuBackend.get(); }
}
