//! The records of a `.berth` file exactly as `docs/FORMAT.md` lays them out, with their byte
//! encoding and a bounds-checked decoding.
//!
//! Decoding here checks only structure: every read stays inside the header, every string and
//! count is under its cap and fits in the bytes that remain before anything is allocated. What
//! the values mean (enums, shapes, offsets, the tensor set) is the reader's business. Fields
//! are raw integers so that tests and the fuzzer can write any value, valid or not.

use std::borrow::Cow;

use super::{caps, PREAMBLE_LEN};
use crate::config::caps as cfg_caps;
use crate::error::FormatError;

/// The fixed 64-byte preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPreamble {
    pub magic: [u8; 8],
    pub endian: u32,
    pub major: u16,
    pub minor: u16,
    pub header_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub checksum_algo: u32,
    pub flags: u32,
    pub reserved: u64,
    pub header_crc: u32,
    pub data_crc: u32,
}

/// The bytes of the preamble that the header checksum covers: `[0, 56)`.
pub const PREAMBLE_CRC_COVERED: usize = 56;

impl RawPreamble {
    pub fn decode(b: &[u8; PREAMBLE_LEN]) -> RawPreamble {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&b[0..8]);
        RawPreamble {
            magic,
            endian: u32_at(8),
            major: u16_at(12),
            minor: u16_at(14),
            header_len: u64_at(16),
            data_offset: u64_at(24),
            data_len: u64_at(32),
            checksum_algo: u32_at(40),
            flags: u32_at(44),
            reserved: u64_at(48),
            header_crc: u32_at(56),
            data_crc: u32_at(60),
        }
    }

    pub fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut b = [0u8; PREAMBLE_LEN];
        b[0..8].copy_from_slice(&self.magic);
        b[8..12].copy_from_slice(&self.endian.to_le_bytes());
        b[12..14].copy_from_slice(&self.major.to_le_bytes());
        b[14..16].copy_from_slice(&self.minor.to_le_bytes());
        b[16..24].copy_from_slice(&self.header_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.data_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_len.to_le_bytes());
        b[40..44].copy_from_slice(&self.checksum_algo.to_le_bytes());
        b[44..48].copy_from_slice(&self.flags.to_le_bytes());
        b[48..56].copy_from_slice(&self.reserved.to_le_bytes());
        b[56..60].copy_from_slice(&self.header_crc.to_le_bytes());
        b[60..64].copy_from_slice(&self.data_crc.to_le_bytes());
        b
    }
}

/// The config block.
#[derive(Clone, Debug, PartialEq)]
pub struct RawConfig<'a> {
    pub family: u8,
    pub head: u8,
    pub hidden_act: u8,
    pub has_pooler: u8,
    pub pooling: u8,
    pub normalize: u8,
    pub problem_type: u8,
    pub tied_decoder: u8,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub intermediate_size: u64,
    pub max_position_embeddings: u64,
    pub type_vocab_size: u64,
    pub layer_norm_eps: f64,
    pub labels: Vec<Cow<'a, [u8]>>,
}

/// The tokenizer block (when `present` is 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTokenizer<'a> {
    pub kind: u8,
    pub lowercase: u8,
    pub strip_accents: u8,
    pub handle_chinese_chars: u8,
    pub clean_text: u8,
    pub reserved: u16,
    pub max_length: u64,
    pub max_input_chars_per_word: u64,
    pub continuing_subword_prefix: Cow<'a, [u8]>,
    /// unk, cls, sep, pad, mask.
    pub special: [u64; 5],
    pub vocab: Vec<Cow<'a, [u8]>>,
    pub special_ids: Vec<u64>,
}

/// One tensor directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTensor<'a> {
    pub name: Cow<'a, [u8]>,
    pub dtype: u8,
    pub layout: u8,
    pub quant_scheme: u8,
    pub quant_version: u8,
    pub dims: Vec<u64>,
    pub data_offset: u64,
    pub data_len: u64,
    pub scale_offset: u64,
    pub scale_len: u64,
}

/// The whole header.
#[derive(Clone, Debug, PartialEq)]
pub struct RawHeader<'a> {
    pub config: RawConfig<'a>,
    pub tokenizer: Option<RawTokenizer<'a>>,
    pub tensors: Vec<RawTensor<'a>>,
}

/// Reads little-endian fields from the header, never past its end.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], FormatError> {
        let left = self.buf.len() - self.pos;
        let eof = || FormatError::HeaderEof {
            what,
            at: self.pos as u64,
            needed: n,
            left: left as u64,
        };
        let n = usize::try_from(n).map_err(|_| eof())?;
        if n > left {
            return Err(eof());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A `u32`-length-prefixed string of at most `cap` bytes, borrowed from the header.
    fn string(&mut self, what: &'static str, cap: u64) -> Result<&'a [u8], FormatError> {
        let len = u64::from(self.u32(what)?);
        if len > cap {
            return Err(FormatError::CapExceeded {
                what,
                value: len,
                cap,
            });
        }
        self.take(len, what)
    }

    /// A `u64` count of items of at least `min_item` bytes each: checked against its cap and
    /// against the bytes left, so that a `Vec::with_capacity(count)` is always backed by data.
    fn count(&mut self, what: &'static str, cap: u64, min_item: u64) -> Result<usize, FormatError> {
        let n = self.u64(what)?;
        if n > cap {
            return Err(FormatError::CapExceeded {
                what,
                value: n,
                cap,
            });
        }
        let left = (self.buf.len() - self.pos) as u64;
        let needed = n.checked_mul(min_item).ok_or(FormatError::CapExceeded {
            what,
            value: n,
            cap,
        })?;
        if needed > left {
            return Err(FormatError::HeaderEof {
                what,
                at: self.pos as u64,
                needed,
                left,
            });
        }
        usize::try_from(n).map_err(|_| FormatError::CapExceeded {
            what,
            value: n,
            cap,
        })
    }
}

/// The smallest encoded sizes, for [`Cursor::count`]: a string is at least its 4-byte length;
/// a tensor entry at least its name length, 8 bytes of codes and rank, and 4 u64 offsets.
const MIN_STRING: u64 = 4;
const MIN_TENSOR: u64 = 4 + 8 + 32;

impl<'a> RawHeader<'a> {
    /// Decodes a header. The whole of `buf` must be consumed.
    pub fn decode(buf: &'a [u8]) -> Result<RawHeader<'a>, FormatError> {
        let mut c = Cursor { buf, pos: 0 };
        let config = decode_config(&mut c)?;
        let tokenizer = decode_tokenizer(&mut c)?;
        let tensors = decode_tensors(&mut c)?;
        if c.pos != buf.len() {
            return Err(FormatError::TrailingHeaderBytes {
                extra: (buf.len() - c.pos) as u64,
            });
        }
        Ok(RawHeader {
            config,
            tokenizer,
            tensors,
        })
    }

    /// Encodes the header. The inverse of [`RawHeader::decode`].
    ///
    /// # Panics
    /// If a string is 4 GiB or longer (its length cannot be written). [`super::encode`]
    /// validates every string against its cap before it gets here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let put_str = |out: &mut Vec<u8>, s: &[u8]| {
            let len =
                u32::try_from(s.len()).expect("strings in a header are capped far below 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(s);
        };
        let c = &self.config;
        out.extend_from_slice(&[
            c.family,
            c.head,
            c.hidden_act,
            c.has_pooler,
            c.pooling,
            c.normalize,
            c.problem_type,
            c.tied_decoder,
        ]);
        for v in [
            c.vocab_size,
            c.hidden_size,
            c.num_layers,
            c.num_heads,
            c.intermediate_size,
            c.max_position_embeddings,
            c.type_vocab_size,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&c.layer_norm_eps.to_le_bytes());
        out.extend_from_slice(&(c.labels.len() as u64).to_le_bytes());
        for l in &c.labels {
            put_str(&mut out, l);
        }
        match &self.tokenizer {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&[
                    t.kind,
                    t.lowercase,
                    t.strip_accents,
                    t.handle_chinese_chars,
                    t.clean_text,
                ]);
                out.extend_from_slice(&t.reserved.to_le_bytes());
                out.extend_from_slice(&t.max_length.to_le_bytes());
                out.extend_from_slice(&t.max_input_chars_per_word.to_le_bytes());
                put_str(&mut out, &t.continuing_subword_prefix);
                for id in t.special {
                    out.extend_from_slice(&id.to_le_bytes());
                }
                out.extend_from_slice(&(t.vocab.len() as u64).to_le_bytes());
                for tok in &t.vocab {
                    put_str(&mut out, tok);
                }
                out.extend_from_slice(&(t.special_ids.len() as u64).to_le_bytes());
                for id in &t.special_ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&[t.dtype, t.layout, t.quant_scheme, t.quant_version]);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            for v in [t.data_offset, t.data_len, t.scale_offset, t.scale_len] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }
}

fn decode_config<'a>(c: &mut Cursor<'a>) -> Result<RawConfig<'a>, FormatError> {
    let codes: [u8; 8] = c.array("config codes")?;
    let mut sizes = [0u64; 7];
    for s in &mut sizes {
        *s = c.u64("config sizes")?;
    }
    let layer_norm_eps = c.f64("layer_norm_eps")?;
    let n = c.count("label count", cfg_caps::NUM_LABELS, MIN_STRING)?;
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        labels.push(Cow::Borrowed(c.string("label", cfg_caps::LABEL_LEN)?));
    }
    let [family, head, hidden_act, has_pooler, pooling, normalize, problem_type, tied_decoder] =
        codes;
    let [vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings, type_vocab_size] =
        sizes;
    Ok(RawConfig {
        family,
        head,
        hidden_act,
        has_pooler,
        pooling,
        normalize,
        problem_type,
        tied_decoder,
        vocab_size,
        hidden_size,
        num_layers,
        num_heads,
        intermediate_size,
        max_position_embeddings,
        type_vocab_size,
        layer_norm_eps,
        labels,
    })
}

fn decode_tokenizer<'a>(c: &mut Cursor<'a>) -> Result<Option<RawTokenizer<'a>>, FormatError> {
    match c.u8("tokenizer present")? {
        0 => return Ok(None),
        1 => {}
        code => {
            return Err(FormatError::InvalidEnum {
                field: "tokenizer present",
                code: code.into(),
                context: String::new(),
            })
        }
    }
    let [kind, lowercase, strip_accents, handle_chinese_chars, clean_text] =
        c.array("tokenizer codes")?;
    let reserved = c.u16("tokenizer reserved")?;
    let max_length = c.u64("max_length")?;
    let max_input_chars_per_word = c.u64("max_input_chars_per_word")?;
    let prefix = c.string("continuing_subword_prefix", cfg_caps::SUBWORD_PREFIX_LEN)?;
    let mut special = [0u64; 5];
    for s in &mut special {
        *s = c.u64("special token ids")?;
    }
    let n = c.count("vocab count", cfg_caps::VOCAB_SIZE, MIN_STRING)?;
    let mut vocab = Vec::with_capacity(n);
    for _ in 0..n {
        vocab.push(Cow::Borrowed(c.string("vocab token", cfg_caps::TOKEN_LEN)?));
    }
    let n = c.count("special token count", cfg_caps::VOCAB_SIZE, 8)?;
    let mut special_ids = Vec::with_capacity(n);
    for _ in 0..n {
        special_ids.push(c.u64("special token id")?);
    }
    Ok(Some(RawTokenizer {
        kind,
        lowercase,
        strip_accents,
        handle_chinese_chars,
        clean_text,
        reserved,
        max_length,
        max_input_chars_per_word,
        continuing_subword_prefix: Cow::Borrowed(prefix),
        special,
        vocab,
        special_ids,
    }))
}

fn decode_tensors<'a>(c: &mut Cursor<'a>) -> Result<Vec<RawTensor<'a>>, FormatError> {
    let n = c.count("tensor count", caps::TENSOR_COUNT, MIN_TENSOR)?;
    let mut tensors = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.string("tensor name", caps::NAME_LEN)?;
        let [dtype, layout, quant_scheme, quant_version] = c.array("tensor codes")?;
        let rank = u64::from(c.u32("tensor rank")?);
        if rank == 0 || rank > caps::RANK {
            return Err(FormatError::BadRank {
                name: String::from_utf8_lossy(name).into_owned(),
                rank,
                max: caps::RANK,
            });
        }
        let mut dims = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            dims.push(c.u64("tensor dims")?);
        }
        tensors.push(RawTensor {
            name: Cow::Borrowed(name),
            dtype,
            layout,
            quant_scheme,
            quant_version,
            dims,
            data_offset: c.u64("tensor data offset")?,
            data_len: c.u64("tensor data length")?,
            scale_offset: c.u64("tensor scale offset")?,
            scale_len: c.u64("tensor scale length")?,
        });
    }
    Ok(tensors)
}

/// Builds a whole file from an encoded header and a data section: preamble (with both
/// checksums), header, zero padding to 64, data.
pub fn assemble(header: &[u8], data: &[u8]) -> Vec<u8> {
    let header_end = PREAMBLE_LEN as u64 + header.len() as u64;
    let data_offset =
        super::align_up(header_end).expect("a header in memory is far below u64::MAX");
    let mut out = Vec::with_capacity(data_offset as usize + data.len());
    let pre = RawPreamble {
        magic: super::MAGIC,
        endian: super::ENDIAN_MARKER,
        major: super::FORMAT_MAJOR,
        minor: super::FORMAT_MINOR,
        header_len: header.len() as u64,
        data_offset,
        data_len: data.len() as u64,
        checksum_algo: super::CHECKSUM_CRC32,
        flags: 0,
        reserved: 0,
        header_crc: 0,
        data_crc: 0,
    };
    out.extend_from_slice(&pre.encode());
    out.extend_from_slice(header);
    out.resize(data_offset as usize, 0);
    out.extend_from_slice(data);
    reseal(&mut out);
    out
}

/// The header checksum of a file image whose header is `header`.
pub fn header_crc(preamble: &[u8; PREAMBLE_LEN], header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&preamble[..PREAMBLE_CRC_COVERED]);
    h.update(header);
    h.finalize()
}

/// Recomputes both checksums of a file image in place, wherever its preamble's lengths point
/// inside the image (a region that falls outside is left unsealed). Tests and the fuzzer use it
/// to make a deliberately corrupted file get past the checksums to the check it is aimed at.
pub fn reseal(file: &mut [u8]) {
    let Some(pre_bytes) = file.get(..PREAMBLE_LEN) else {
        return;
    };
    let mut pre_arr = [0u8; PREAMBLE_LEN];
    pre_arr.copy_from_slice(pre_bytes);
    let mut pre = RawPreamble::decode(&pre_arr);
    let region = |off: u64, len: u64| -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= file.len()).then_some(start..end)
    };
    if let Some(r) = region(PREAMBLE_LEN as u64, pre.header_len) {
        pre.header_crc = header_crc(&pre_arr, &file[r]);
    }
    if let Some(r) = region(pre.data_offset, pre.data_len) {
        pre.data_crc = crc32fast::hash(&file[r]);
    }
    file[..PREAMBLE_LEN].copy_from_slice(&pre.encode());
}
