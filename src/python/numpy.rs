//! `_wrap_numpy(api)`: puts leakguard's functions into numpy's default
//! array-data handler (see `raw::numpy`), reached through numpy's C API.

use super::errors::Error;
use crate::raw::numpy::{self, DataHandler, WrapError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_uint, c_void};

/// Slots of numpy's C API table (`numpy/__multiarray_api.h`, stable since
/// they were added): the ABI version, the C API feature version, and
/// `PyDataMem_GetHandler` (feature version 0xf, numpy 1.22, and later).
const API_ABI_VERSION: usize = 0;
const API_FEATURE_VERSION: usize = 211;
const API_GET_HANDLER: usize = 305;
const FEATURE_1_22: c_uint = 0xf;
/// ABI versions whose table has the slots above: numpy 1.x and 2.x.
const ABIS: [c_uint; 2] = [0x0100_0009, 0x0200_0000];

/// Calls the version function (no argument, returns a `c_uint`) in `slot`.
///
/// # Safety
/// `table` is numpy's C API table and `slot` holds such a function.
unsafe fn version_at(table: *const *const c_void, slot: usize) -> c_uint {
    // SAFETY: the caller guarantees what the slot holds.
    let f: extern "C" fn() -> c_uint = unsafe { std::mem::transmute(*table.add(slot)) };
    f()
}

/// `_wrap_numpy(api) -> bool`: `api` is numpy's `_ARRAY_API` capsule. Call
/// it in an empty context (`contextvars.Context().run`), where numpy's
/// current handler is its default one. False when this numpy has no
/// handlers (before 1.22); an error when the capsule is not numpy's table.
#[pyfunction]
fn _wrap_numpy(api: &Bound<'_, PyAny>) -> PyResult<bool> {
    // SAFETY: PyCapsule_CheckExact only reads the object's type; GIL held.
    if unsafe { ffi::PyCapsule_CheckExact(api.as_ptr()) } == 0 {
        return Err(Error::UsageType("numpy's _ARRAY_API must be a capsule".into()).into());
    }
    // SAFETY: a capsule (checked); numpy's table capsule has no name (NULL).
    let table = unsafe { ffi::PyCapsule_GetPointer(api.as_ptr(), std::ptr::null()) }
        as *const *const c_void;
    if table.is_null() {
        return Err(PyErr::fetch(api.py()));
    }
    // SAFETY: numpy's table starts with PyArray_GetNDArrayCVersion, a
    // function of no argument returning the ABI version, in every release.
    let abi = unsafe { version_at(table, API_ABI_VERSION) };
    if !ABIS.contains(&abi) {
        return Ok(false);
    }
    // SAFETY: in ABI 1.x and 2.x tables, slot 211 is
    // PyArray_GetNDArrayCFeatureVersion (no argument, returns the version).
    let feature = unsafe { version_at(table, API_FEATURE_VERSION) };
    if feature < FEATURE_1_22 {
        return Ok(false);
    }
    // From feature version 0xf, slot 305 is PyDataMem_GetHandler: it returns
    // a new reference to the current handler's capsule, or NULL with an
    // exception set.
    // SAFETY: the slot holds that function (feature checked above); GIL held.
    let capsule = unsafe {
        let f: extern "C" fn() -> *mut ffi::PyObject =
            std::mem::transmute(*table.add(API_GET_HANDLER));
        f()
    };
    if capsule.is_null() {
        return Err(PyErr::fetch(api.py()));
    }
    // SAFETY: `capsule` is a new reference we own; numpy names its handler
    // capsules "mem_handler" (NULL with an exception set when it is not).
    let handler = unsafe {
        let p = ffi::PyCapsule_GetPointer(capsule, c"mem_handler".as_ptr());
        ffi::Py_DECREF(capsule);
        p
    } as *mut DataHandler;
    if handler.is_null() {
        return Err(PyErr::fetch(api.py()));
    }
    // SAFETY: the default handler is a static struct of numpy's module,
    // which is never unloaded, and numpy reads it in place.
    match unsafe { numpy::wrap_default_handler(handler) } {
        Ok(()) => Ok(true),
        Err(WrapError::Unsupported) => Ok(false),
        Err(WrapError::Another) => Err(Error::Tracing(
            "another numpy data handler was wrapped before (numpy loaded twice?)".into(),
        )
        .into()),
    }
}

/// Whether numpy's default array-data handler is wrapped.
#[pyfunction]
fn _numpy_wrapped() -> bool {
    numpy::is_wrapped()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_wrap_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(_numpy_wrapped, m)?)?;
    Ok(())
}
