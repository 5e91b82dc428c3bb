//! The emulator's end-to-end tests share the workspace harness (`kvs-test-support`: the test
//! emulator, the official SDK clients, the raw wire and the recording checks) and add one
//! thing of their own: a device-side WebRTC peer (`peer`).

#![allow(dead_code, unused_imports)]

pub(crate) mod peer;

pub(crate) use kvs_test_support::raw::*;
pub(crate) use kvs_test_support::recording::*;
pub(crate) use kvs_test_support::{Service, StorageMaster, TestEmulator, WAIT};
