//! The library behind the `berth` command: conversion from Hugging Face checkpoints, inspection
//! the `run` command's safetensors I/O, and `berth bench`.

pub mod bench;
pub mod cache;
pub mod convert;
pub mod embed;
pub mod inspect;
pub mod run;
pub mod tasks;
pub mod tokenize;

/// English text (sentences of Python's documentation, one per line, from the tokenizer fixture
/// corpus): what `berth bench` cuts its workloads from and int8 conversion calibrates on.
pub const CORPUS: &str = include_str!("corpus.txt");
