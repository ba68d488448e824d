//! Feeds arbitrary and mutated bytes to the `.berth` reader: load, verify, read every tensor, and
//! build and run the reference model on whatever loads. Each input is tried twice: as is (which
//! mostly exercises the preamble and the checksums) and with both checksums recomputed (which
//! lets mutations reach the header decoder and every structural check behind the checksum).

#![no_main]

use berth::format::{raw, BerthFile};
use berth::reference::{Inputs, ReferenceModel};
use libfuzzer_sys::fuzz_target;

fn exercise(bytes: &[u8]) {
    let Ok(file) = BerthFile::from_bytes(bytes) else {
        return;
    };
    let verified = file.verify().is_ok();
    for t in file.tensors() {
        assert_eq!(t.to_f32_vec().len(), t.info.numel());
    }
    if !verified {
        return;
    }
    let Ok(model) = ReferenceModel::new(&file) else {
        return;
    };
    let cfg = file.config();
    let seq = cfg.max_position_embeddings.min(3);
    let ids: Vec<i64> = (0..seq as i64).map(|i| i % cfg.vocab_size as i64).collect();
    let out = model
        .forward(&Inputs {
            batch: 1,
            seq,
            input_ids: &ids,
            attention_mask: None,
            token_type_ids: None,
        })
        .expect("valid ids");
    assert_eq!(out.last_hidden_state.data.len(), seq * cfg.hidden_size);
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut sealed = data.to_vec();
    raw::reseal(&mut sealed);
    exercise(&sealed);
});
