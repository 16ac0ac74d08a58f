"""Stand-in CUDA libraries: link a `--features cuda` build on a machine without NVIDIA's driver,
and smoke-test it there as a driver that has no device.

candle links cudarc with `dynamic-linking`, so the binary names libcuda, libcublas, libcublasLt,
libcurand and libnvrtc. No PyPI wheel ships the driver (it comes with the GPU's kernel module), and
the cuBLAS/cuRAND wheels are ~1 GB for functions a CPU-only smoke test never calls. So we compile
one small C library per soname whose functions are the symbols cudarc declares (read from its
sources in Cargo's registry, so the list follows the version in Cargo.lock), each returning 100:
CUDA_ERROR_NO_DEVICE for the driver; never reached for the others, since nothing runs without a
device. On a GPU machine these must NOT be on LD_LIBRARY_PATH: the real libraries are used.

usage: python3 cuda/stubs.py CUDA_HOME/lib/stubs
"""
import json
import re
import subprocess
import sys
from pathlib import Path

# soname -> cudarc's module whose sys/mod.rs declares that library's functions
LIBRARIES = {
    "libcuda.so.1": "driver",
    "libcublas.so.13": "cublas",
    "libcublasLt.so.13": "cublaslt",
    "libcurand.so.10": "curand",
    "libnvrtc.so.13": "nvrtc",
}
NO_DEVICE = 100  # CUresult CUDA_ERROR_NO_DEVICE


def cudarc_sources() -> Path:
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--features", "cuda"], text=True))
    for package in meta["packages"]:
        if package["name"] == "cudarc":
            return Path(package["manifest_path"]).parent / "src"
    sys.exit("cudarc is not in Cargo's dependency graph with --features cuda")


def declared_functions(sys_module: Path) -> list[str]:
    names = re.findall(r"^pub unsafe fn (\w+)\(", sys_module.read_text(), flags=re.M)
    if not names:
        sys.exit(f"no functions found in {sys_module}: cudarc's layout changed, update cuda/stubs.py")
    return sorted(set(names))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    src = cudarc_sources()
    for soname, module in LIBRARIES.items():
        names = declared_functions(src / module / "sys" / "mod.rs")
        c_file = out / f"{module}.c"
        c_file.write_text("".join(f"int {name}(void) {{ return {NO_DEVICE}; }}\n" for name in names))
        subprocess.check_call(["cc", "-shared", "-fPIC", "-O1", f"-Wl,-soname,{soname}",
                               "-o", str(out / soname), str(c_file)])
        link_name = out / (soname.split(".so")[0] + ".so")  # what `-l` looks for
        link_name.unlink(missing_ok=True)
        link_name.symlink_to(soname)
        print(f"{out / soname}: {len(names)} functions")
    # candle-kernels also links the CUDA runtime (`-lcudart`), which the nvidia-cuda-runtime wheel
    # ships as libcudart.so.13 without the unversioned name the linker looks for: add that name
    # here, pointing at the real library beside this folder.
    runtime = out.parent / "libcudart.so.13"
    if runtime.exists():
        link_name = out / "libcudart.so"
        link_name.unlink(missing_ok=True)
        link_name.symlink_to(runtime)


if __name__ == "__main__":
    main()
