//! The library behind the `berth` command: conversion from Hugging Face checkpoints, inspection
//! the `run` command's safetensors I/O, and `berth bench`.

pub mod bench;
pub mod cache;
pub mod convert;
pub mod inspect;
pub mod run;
pub mod tokenize;
