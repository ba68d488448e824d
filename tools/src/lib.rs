//! The library behind the `berth` command: conversion from Hugging Face checkpoints, inspection
//! and the `run` command's safetensors I/O.

pub mod cache;
pub mod convert;
pub mod inspect;
pub mod run;
pub mod tokenize;
