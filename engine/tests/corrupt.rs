//! Every way a `.berth` file can be wrong gives its own named error, never a panic
//! (docs/FORMAT.md, "Errors"). Each case starts from a valid micro file and breaks one thing,
//! re-sealing the checksums where the case is aimed past them.

mod common;

use std::collections::BTreeSet;

use berth::format::raw::{self, RawHeader, RawPreamble};
use berth::format::{to_raw_parts, BerthFile, DType, Layout, TensorData};
use berth::FormatError;
use common::{micro_file, micro_parts};

/// Loads and verifies; the error, if any.
fn check(bytes: &[u8]) -> Result<(), FormatError> {
    BerthFile::from_bytes(bytes)?.verify()
}

fn variant(e: &FormatError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '(']).next().unwrap_or("").to_owned()
}

/// The valid file with its preamble edited (and re-sealed).
fn preamble(edit: impl FnOnce(&mut RawPreamble)) -> Vec<u8> {
    let mut f = micro_file();
    let mut p = RawPreamble::decode(f[..64].try_into().unwrap());
    edit(&mut p);
    f[..64].copy_from_slice(&p.encode());
    raw::reseal(&mut f);
    f
}

/// The valid file's header records and data edited, then assembled and sealed.
fn records(edit: impl FnOnce(&mut RawHeader<'_>, &mut Vec<u8>)) -> Vec<u8> {
    let (cfg, tok, tensors) = micro_parts();
    let (mut h, mut data) = to_raw_parts(&cfg, Some(&tok), &tensors);
    edit(&mut h, &mut data);
    raw::assemble(&h.encode(), &data)
}

/// The valid file's header bytes edited, then assembled and sealed.
fn header_bytes(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let (cfg, tok, tensors) = micro_parts();
    let (h, data) = to_raw_parts(&cfg, Some(&tok), &tensors);
    let mut hb = h.encode();
    edit(&mut hb);
    raw::assemble(&hb, &data)
}

/// A file laid out from an edited tensor list (bypassing the writer's own check).
fn tensor_list(edit: impl FnOnce(&mut Vec<TensorData>)) -> Vec<u8> {
    let (cfg, tok, mut tensors) = micro_parts();
    edit(&mut tensors);
    let (h, data) = to_raw_parts(&cfg, Some(&tok), &tensors);
    raw::assemble(&h.encode(), &data)
}

/// A file from the valid tensor list with its bf16 weights (format 1.3) stored as f16 in the
/// same layout, saying `minor`: for the cases aimed at what earlier versions lacked.
fn without_bf16_at_minor(minor: u16) -> Vec<u8> {
    let mut f = tensor_list(|t| {
        for w in t.iter_mut().filter(|w| w.dtype == DType::Bf16) {
            let ones = vec![half::f16::ONE; w.shape.iter().product()];
            *w = match w.layout {
                Layout::Panels => TensorData::f16_panels(w.name.clone(), &w.shape, &ones),
                Layout::RowMajor => TensorData::f16(w.name.clone(), &w.shape, &ones),
            };
        }
    });
    let mut p = RawPreamble::decode(f[..64].try_into().unwrap());
    p.minor = minor;
    f[..64].copy_from_slice(&p.encode());
    raw::reseal(&mut f);
    f
}

/// The valid file with the embeddings' LayerNorm weight (8 values) replaced by `make(name)`.
fn layer_norm_as(make: impl FnOnce(&'static str) -> TensorData) -> Vec<u8> {
    tensor_list(|t| {
        let name = "embeddings.LayerNorm.weight";
        let ln = t.iter_mut().find(|t| t.name == name).unwrap();
        *ln = make(name);
    })
}

fn index_of(h: &RawHeader<'_>, dtype: DType) -> usize {
    h.tensors
        .iter()
        .position(|t| t.dtype == dtype.code())
        .unwrap()
}

/// The offset of the header padding (between header end and data), if the micro header leaves one.
fn header_end(file: &[u8]) -> (usize, usize) {
    let p = RawPreamble::decode(file[..64].try_into().unwrap());
    (64 + p.header_len as usize, p.data_offset as usize)
}

#[test]
fn the_micro_file_is_valid() {
    let f = micro_file();
    let file = BerthFile::from_bytes(&f).unwrap();
    file.verify().unwrap();
    assert!(file.header().tensors.iter().any(|t| t.dtype == DType::I8));
    assert!(file.header().tensors.iter().any(|t| t.dtype == DType::F16));
    assert!(file.header().tensors.iter().any(|t| t.dtype == DType::Bf16));
    // Without its bf16 weights, it is a valid 1.2 file.
    BerthFile::from_bytes(&without_bf16_at_minor(2))
        .unwrap()
        .verify()
        .unwrap();
}

#[test]
fn each_corruption_gets_its_named_error() {
    let valid = micro_file();
    let (h_end, d_off) = header_end(&valid);
    assert!(
        h_end < d_off,
        "the micro header must leave padding for the NonZeroPadding case"
    );

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("TooShort", valid[..40].to_vec()),
        ("TooShort", Vec::new()),
        ("BadMagic", {
            let mut f = valid.clone();
            f[1] = b'b';
            f
        }),
        (
            "UnsupportedEndianness",
            preamble(|p| p.endian = 0x0403_0201),
        ),
        ("UnsupportedVersion", preamble(|p| p.major = 2)),
        ("UnsupportedVersion", preamble(|p| p.minor = 4)),
        ("UnsupportedChecksum", preamble(|p| p.checksum_algo = 2)),
        ("NonZeroReserved", preamble(|p| p.flags = 1)),
        ("NonZeroReserved", preamble(|p| p.reserved = 1 << 40)),
        ("HeaderTooLarge", preamble(|p| p.header_len = 1 << 40)),
        ("HeaderTooLarge", preamble(|p| p.header_len = u64::MAX)),
        ("Truncated", valid[..h_end - 5].to_vec()),
        ("Truncated", valid[..valid.len() - 1].to_vec()),
        ("Truncated", preamble(|p| p.data_len = u64::MAX - 10)),
        ("BadDataOffset", preamble(|p| p.data_offset += 64)),
        ("BadDataOffset", preamble(|p| p.data_offset = u64::MAX)),
        ("TrailingBytes", {
            let mut f = valid.clone();
            f.extend_from_slice(&[0; 64]);
            raw::reseal(&mut f);
            f
        }),
        ("HeaderChecksumMismatch", {
            let mut f = valid.clone();
            f[70] ^= 1;
            f
        }),
        ("HeaderChecksumMismatch", {
            let mut f = valid.clone();
            f[56] ^= 0x80;
            f
        }),
        ("DataChecksumMismatch", {
            let mut f = valid.clone();
            let n = f.len();
            f[n - 3] ^= 1;
            f
        }),
        ("DataChecksumMismatch", {
            let mut f = valid.clone();
            f[61] ^= 1;
            f
        }),
        ("NonZeroPadding", {
            let mut f = valid.clone();
            f[h_end] = 7;
            raw::reseal(&mut f);
            f
        }),
        (
            "NonZeroPadding",
            records(|h, data| {
                // The byte just after a block that does not end on a 64-byte boundary is padding.
                let end = h
                    .tensors
                    .iter()
                    .map(|t| (t.data_offset + t.data_len) as usize)
                    .find(|e| e % 64 != 0)
                    .unwrap();
                data[end] = 1;
            }),
        ),
        ("HeaderEof", header_bytes(|hb| hb.truncate(hb.len() - 3))),
        ("HeaderEof", header_bytes(|hb| hb.truncate(20))),
        (
            "TrailingHeaderBytes",
            header_bytes(|hb| hb.extend_from_slice(&[0; 5])),
        ),
        (
            "CapExceeded",
            records(|h, _| h.tensors[2].name = vec![b'x'; 300].into()),
        ),
        (
            "CapExceeded",
            records(|h, _| h.config.labels[0] = vec![b'L'; 5000].into()),
        ),
        (
            "CapExceeded",
            header_bytes(|hb| {
                // The label count (after 8 code bytes, 7 sizes and eps) claims 2^40 labels.
                hb[72..80].copy_from_slice(&(1u64 << 40).to_le_bytes());
            }),
        ),
        (
            "HeaderEof",
            header_bytes(|hb| {
                // A label count under its cap but far beyond the bytes left.
                hb[72..80].copy_from_slice(&60000u64.to_le_bytes());
            }),
        ),
        (
            "BadUtf8",
            records(|h, _| h.tensors[1].name = vec![0xff, 0xfe].into()),
        ),
        (
            "BadUtf8",
            records(|h, _| h.tokenizer.as_mut().unwrap().vocab[7] = vec![0xc3].into()),
        ),
        (
            "BadUtf8",
            records(|h, _| h.config.labels[1] = vec![0x80].into()),
        ),
        ("InvalidEnum", records(|h, _| h.tensors[0].dtype = 9)),
        ("InvalidEnum", records(|h, _| h.tensors[0].layout = 0)),
        ("InvalidEnum", records(|h, _| h.config.hidden_act = 7)),
        ("InvalidEnum", records(|h, _| h.config.head = 5)),
        ("InvalidEnum", records(|h, _| h.config.has_pooler = 2)),
        (
            "InvalidEnum",
            records(|h, _| h.tokenizer.as_mut().unwrap().strip_accents = 3),
        ),
        ("BadConfig", records(|h, _| h.config.num_heads = 3)),
        ("BadConfig", records(|h, _| h.config.hidden_size = 0)),
        (
            "BadConfig",
            records(|h, _| h.config.layer_norm_eps = f64::NAN),
        ),
        ("BadConfig", records(|h, _| h.config.vocab_size = u64::MAX)),
        ("BadConfig", records(|h, _| h.config.labels.clear())),
        (
            "BadTokenizer",
            records(|h, _| h.tokenizer.as_mut().unwrap().special[0] = 16),
        ),
        (
            "BadTokenizer",
            records(|h, _| h.tokenizer.as_mut().unwrap().max_length = 9),
        ),
        (
            "BadTokenizer",
            records(|h, _| h.tokenizer.as_mut().unwrap().special_ids.push(2)),
        ),
        (
            "BadTokenizer",
            records(|h, _| h.tokenizer.as_mut().unwrap().vocab[5] = Vec::new().into()),
        ),
        ("BadRank", records(|h, _| h.tensors[0].dims = vec![1; 5])),
        ("ZeroDim", records(|h, _| h.tensors[0].dims[1] = 0)),
        (
            "ShapeOverflow",
            records(|h, _| h.tensors[0].dims = vec![u64::MAX / 2, 3]),
        ),
        ("LengthMismatch", records(|h, _| h.tensors[0].data_len -= 1)),
        (
            "LengthMismatch",
            records(|h, _| {
                let i = index_of(h, DType::I8);
                h.tensors[i].scale_len += 4;
            }),
        ),
        (
            "QuantMismatch",
            records(|h, _| {
                let i = index_of(h, DType::I8);
                (h.tensors[i].quant_scheme, h.tensors[i].quant_version) = (0, 0);
            }),
        ),
        (
            "QuantMismatch",
            records(|h, _| (h.tensors[0].quant_scheme, h.tensors[0].quant_version) = (1, 1)),
        ),
        ("QuantMismatch", records(|h, _| h.tensors[0].scale_len = 64)),
        (
            "UnsupportedQuant",
            records(|h, _| {
                let i = index_of(h, DType::I8);
                h.tensors[i].quant_version = 2;
            }),
        ),
        ("Misaligned", records(|h, _| h.tensors[3].data_offset += 4)),
        (
            "TensorOverlap",
            records(|h, _| h.tensors[3].data_offset = h.tensors[2].data_offset),
        ),
        ("TensorHole", records(|h, _| h.tensors[3].data_offset += 64)),
        (
            "TensorOutOfRange",
            records(|_, data| data.truncate(data.len() - 8)),
        ),
        (
            "TensorOutOfRange",
            records(|h, _| {
                let last = h.tensors.len() - 1;
                // A length that is consistent with its shape but runs far past the data.
                h.tensors[last].dims = vec![u64::MAX / 8];
                h.tensors[last].data_len = u64::MAX / 8 * 4;
            }),
        ),
        (
            "TrailingData",
            records(|_, data| data.extend_from_slice(&[0; 64])),
        ),
        (
            "DuplicateTensor",
            records(|h, _| h.tensors[4].name = h.tensors[3].name.clone()),
        ),
        (
            "MissingTensor",
            tensor_list(|t| {
                t.pop();
            }),
        ),
        (
            "UnexpectedTensor",
            tensor_list(|t| t.push(TensorData::f32("classifier.extra", &[2], &[1.0, 2.0]))),
        ),
        (
            "ShapeMismatch",
            tensor_list(|t| {
                let c = t.iter_mut().find(|t| t.name == "classifier.bias").unwrap();
                *c = TensorData::f32("classifier.bias", &[4], &[0.0; 4]);
            }),
        ),
        (
            "DtypeNotAllowed",
            layer_norm_as(|name| TensorData::f16(name, &[8], &[half::f16::ONE; 8])),
        ),
        (
            "DtypeNotAllowed",
            tensor_list(|t| {
                let q: Vec<i8> = vec![1; 16 * 8];
                t[0] = TensorData::int8_per_channel(
                    "embeddings.word_embeddings.weight",
                    &[16, 8],
                    &q,
                    &[1.0; 16],
                );
            }),
        ),
        (
            "NonFiniteScale",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.scales.is_some()).unwrap();
                w.scales.as_mut().unwrap()[1] = f32::NAN;
            }),
        ),
        (
            "NonFiniteScale",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.scales.is_some()).unwrap();
                w.scales.as_mut().unwrap()[0] = 0.0;
            }),
        ),
        (
            "NonFiniteWeight",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.dtype == DType::F32).unwrap();
                w.bytes[4..8].copy_from_slice(&f32::INFINITY.to_le_bytes());
            }),
        ),
        (
            "NonFiniteWeight",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.dtype == DType::F16).unwrap();
                w.bytes[0..2].copy_from_slice(&half::f16::NAN.to_le_bytes());
            }),
        ),
    ];

    cases.extend(layout_cases());
    cases.extend(input_scale_cases());
    cases.extend(bf16_cases());

    let mut distinct = BTreeSet::new();
    for (i, (want, bytes)) in cases.iter().enumerate() {
        match check(bytes) {
            Ok(()) => panic!("case {i} ({want}) was accepted"),
            Err(e) => {
                assert_eq!(&variant(&e), want, "case {i}: got {e}");
                assert!(!e.to_string().is_empty());
                distinct.insert(variant(&e));
            }
        }
    }
    println!(
        "{} cases, {} distinct errors: {distinct:?}",
        cases.len(),
        distinct.len()
    );
    assert!(
        distinct.len() >= 35,
        "only {} distinct errors",
        distinct.len()
    );
}

/// Panels where they may not be, packed weights that contradict themselves, and int8 rows too
/// long for exact sums.
/// Input scales (format 1.2): only beside int8 weights, f32, `[in_features]`, finite and > 0,
/// and not in a file that says 1.1.
fn input_scale_cases() -> Vec<(&'static str, Vec<u8>)> {
    fn beside(dtype: DType, edit: impl FnOnce(&mut TensorData)) -> Vec<u8> {
        tensor_list(|t| {
            let w = t
                .iter()
                .find(|t| t.dtype == dtype && t.name.starts_with("encoder.") && t.shape.len() == 2)
                .unwrap();
            let prefix = w.name.strip_suffix(".weight").unwrap().to_owned();
            let k = w.shape[1];
            t.retain(|t| t.name != format!("{prefix}.input_scale"));
            let mut s = TensorData::f32(format!("{prefix}.input_scale"), &[k], &vec![1.5; k]);
            edit(&mut s);
            t.push(s);
        })
    }
    vec![
        ("BadInputScale", beside(DType::F16, |_| {})),
        ("BadInputScale", beside(DType::F32, |_| {})),
        (
            "BadInputScale",
            beside(DType::I8, |s| {
                let v: Vec<half::f16> = vec![half::f16::ONE; s.shape[0]];
                *s = TensorData::f16(s.name.clone(), &s.shape, &v);
            }),
        ),
        (
            "ShapeMismatch",
            beside(DType::I8, |s| {
                let k = s.shape[0] + 1;
                *s = TensorData::f32(s.name.clone(), &[k], &vec![1.0; k]);
            }),
        ),
        (
            "NonFiniteScale",
            beside(DType::I8, |s| {
                s.bytes[4..8].copy_from_slice(&0.0f32.to_le_bytes())
            }),
        ),
        (
            "NonFiniteScale",
            beside(DType::I8, |s| {
                s.bytes[0..4].copy_from_slice(&f32::NAN.to_le_bytes())
            }),
        ),
        // The micro file has input scales: in a file that says 1.1, they are unexpected.
        ("UnexpectedTensor", without_bf16_at_minor(1)),
    ]
}

fn layout_cases() -> Vec<(&'static str, Vec<u8>)> {
    let panels =
        |dtype: DType| move |t: &TensorData| t.layout == Layout::Panels && t.dtype == dtype;
    vec![
        // An int8 row longer than the int8 GEMM's exact sums allow.
        (
            "QuantMismatch",
            records(|h, _| {
                let i = index_of(h, DType::I8);
                h.tensors[i].dims[1] = 70_000;
            }),
        ),
        (
            "LayoutMismatch",
            tensor_list(|t| {
                let w = &mut t[0];
                assert_eq!(w.name, "embeddings.word_embeddings.weight");
                let values = vec![0.5f32; w.shape.iter().product()];
                *w = TensorData::f32_panels(w.name.clone(), &w.shape.clone(), &values);
            }),
        ),
        // Panels in a file that says 1.0.
        ("LayoutMismatch", without_bf16_at_minor(0)),
        (
            "LayoutMismatch",
            records(|h, _| {
                let bias = h.tensors.iter_mut().find(|t| t.dims.len() == 1).unwrap();
                bias.layout = Layout::Panels.code();
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.dtype == DType::I8).unwrap();
                w.bytes[3] = 0x80;
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| panels(DType::I8)(t)).unwrap();
                let last = w.bytes.len() - 1;
                w.bytes[last - 3] = w.bytes[last - 3].wrapping_add(1);
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                // Channel N of the first panel (the micro model's N is below 32): padding.
                let w = t.iter_mut().find(|t| panels(DType::F32)(t)).unwrap();
                let n = w.shape[0];
                assert!(n < 32);
                w.bytes[4 * n..4 * n + 4].copy_from_slice(&1.0f32.to_le_bytes());
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                // Position K of channel 0 of i8 panels when K is not a multiple of 4, else
                // channel N (below 32) at k = 0: padding either way.
                let w = t.iter_mut().find(|t| panels(DType::I8)(t)).unwrap();
                let (n, k) = (w.shape[0], w.shape[1]);
                assert!(n < 32);
                let (row, col) = if k % 4 != 0 { (0, k) } else { (n, 0) };
                w.bytes[berth_kernels::gemm::packed_index_i8(row, col, k)] = 1;
            }),
        ),
    ]
}

/// bf16 (format 1.3): not before 1.3, linear weights only, finite, not denormal, zero padding.
fn bf16_cases() -> Vec<(&'static str, Vec<u8>)> {
    let bf16_panels = |t: &TensorData| t.layout == Layout::Panels && t.dtype == DType::Bf16;
    vec![
        // Code 4 in a file that says 1.2 is an unknown dtype.
        ("InvalidEnum", preamble(|p| p.minor = 2)),
        (
            "DtypeNotAllowed",
            tensor_list(|t| {
                let w = &mut t[0];
                assert_eq!(w.name, "embeddings.word_embeddings.weight");
                let values = vec![half::bf16::ONE; w.shape.iter().product()];
                *w = TensorData::bf16(w.name.clone(), &w.shape.clone(), &values);
            }),
        ),
        (
            "DtypeNotAllowed",
            layer_norm_as(|name| TensorData::bf16(name, &[8], &[half::bf16::ONE; 8])),
        ),
        (
            "NonFiniteWeight",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.dtype == DType::Bf16).unwrap();
                w.bytes[2..4].copy_from_slice(&half::bf16::INFINITY.to_le_bytes());
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                let w = t.iter_mut().find(|t| t.dtype == DType::Bf16).unwrap();
                let denormal = half::bf16::from_bits(0x0001);
                w.bytes[0..2].copy_from_slice(&denormal.to_le_bytes());
            }),
        ),
        (
            "BadPackedWeights",
            tensor_list(|t| {
                // Channel N (below 32) at k = 0 of bf16 panels: padding.
                let w = t.iter_mut().find(|t| bf16_panels(t)).unwrap();
                let (n, k) = (w.shape[0], w.shape[1]);
                assert!(n < 32);
                let i = 2 * berth_kernels::gemm::packed_index_bf16(n, 0, k);
                w.bytes[i..i + 2].copy_from_slice(&half::bf16::ONE.to_le_bytes());
            }),
        ),
    ]
}

/// Any single byte changed, and any truncation, is an error from load or verify: never a panic
/// and never a file accepted as intact. (CRC-32 detects every burst of up to 32 bits.)
#[test]
fn every_single_byte_change_and_truncation_is_caught() {
    let valid = micro_file();
    for pos in 0..valid.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut f = valid.clone();
            f[pos] ^= mask;
            assert!(check(&f).is_err(), "byte {pos} ^ {mask:#x} accepted");
        }
    }
    for len in 0..valid.len() {
        assert!(
            check(&valid[..len]).is_err(),
            "truncation to {len} accepted"
        );
    }
}

#[test]
fn open_reports_io_and_short_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.berth");
    assert!(matches!(
        BerthFile::open(&missing),
        Err(berth::Error::Io { .. })
    ));
    let empty = dir.path().join("empty.berth");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        BerthFile::open(&empty),
        Err(berth::Error::Format(FormatError::TooShort { .. }))
    ));
    let good = dir.path().join("good.berth");
    std::fs::write(&good, micro_file()).unwrap();
    let f = BerthFile::open(&good).unwrap();
    assert!(f.is_mapped());
    f.verify().unwrap();
}

/// The writer refuses what the reader would refuse, before encoding anything.
#[test]
fn writer_validates_before_encoding() {
    let (mut cfg, tok, mut tensors) = micro_parts();
    tensors[0].name = "x".repeat(300);
    assert!(matches!(
        berth::format::encode(&cfg, Some(&tok), &tensors),
        Err(FormatError::CapExceeded { .. })
    ));
    cfg.labels[0] = "L".repeat(5000);
    assert!(matches!(
        berth::format::encode(&cfg, Some(&tok), &micro_parts().2),
        Err(FormatError::BadConfig { .. })
    ));
}
