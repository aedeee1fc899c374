//! Build script. With the `python` feature, compiles `src/raw/cpython.c`, the
//! shim that reads the interpreter's frames, against the *target*
//! interpreter's own headers, internal ones included (`Py_BUILD_CORE`), so
//! its frame layouts are that interpreter's. Without the feature it does
//! nothing: the pure core builds and tests with no interpreter.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use pyo3_build_config::{PythonAbiKind, PythonImplementation};

const SHIM: &str = "src/raw/cpython.c";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_PYTHON").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");

    let include = python_include_dir();
    // An interpreter upgraded in place keeps its paths but not its layouts.
    println!(
        "cargo:rerun-if-changed={}",
        include.join("patchlevel.h").display()
    );

    let mut build = cc::Build::new();
    build.file(SHIM);
    // The headers are the interpreter's, not ours: keep their warnings out.
    if build.get_compiler().is_like_msvc() {
        build.include(&include);
    } else {
        build.flag("-isystem").flag(include.as_os_str());
    }
    build
        // Internal headers (`internal/pycore_*.h`) need Py_BUILD_CORE. The
        // `_MODULE` variant (which implies it) makes the headers reach the
        // current thread state through exported functions rather than the
        // interpreter's own thread-local, which extension modules cannot see.
        .define("Py_BUILD_CORE", None)
        .define("Py_BUILD_CORE_MODULE", None)
        // The inline helpers in the headers assume a release build's NDEBUG.
        .define("NDEBUG", None)
        .warnings(true)
        .extra_warnings(true)
        .compile("leakguard_cpython");
}

/// The `include` directory of the interpreter PyO3 builds for, after
/// checking that the interpreter is one the shim can be built for and that
/// its internal headers are installed.
fn python_include_dir() -> PathBuf {
    let config = pyo3_build_config::get();
    if config.implementation() != PythonImplementation::CPython {
        fail(&format!(
            "the `python` feature reads CPython's frames; {} is not supported",
            config.implementation()
        ));
    }
    if matches!(config.target_abi().kind(), PythonAbiKind::Stable(_)) {
        fail("the frame-walking shim depends on one CPython version's internal layouts; it cannot be built for the stable ABI (abi3)");
    }
    if config.is_free_threaded() {
        fail("free-threaded CPython builds are not supported yet");
    }
    let python = config
        .executable()
        .map(str::to_owned)
        .or_else(|| env::var("PYO3_PYTHON").ok())
        .unwrap_or_else(|| {
            fail("PyO3 found no Python interpreter to take headers from: set PYO3_PYTHON to the target interpreter")
        });

    let output = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['include'])",
        ])
        .output()
        .unwrap_or_else(|err| fail(&format!("could not run {python}: {err}")));
    if !output.status.success() {
        fail(&format!(
            "{python} could not report its include directory:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let include = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());

    let mut required = vec!["Python.h", "internal/pycore_pystate.h"];
    let version = config.version();
    if (version.major, version.minor) >= (3, 11) {
        required.push("internal/pycore_frame.h");
    }
    for header in required {
        if !include.join(header).is_file() {
            fail(&missing_headers(&python, &include, header));
        }
    }
    include
}

fn missing_headers(python: &str, include: &Path, header: &str) -> String {
    format!(
        "{python} reports its headers in {dir}, but {header} is not there. \
         leakguard's frame walker is compiled against the interpreter's own headers, \
         internal ones included: install the interpreter's development headers \
         (e.g. the python3.X-dev package, or a python.org / pyenv build, which ship include/python3.X/internal)",
        dir = include.display(),
    )
}

fn fail(message: &str) -> ! {
    eprintln!("error: leakguard: {message}");
    std::process::exit(1);
}
