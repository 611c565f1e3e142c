//! Checkpoints read tensor by tensor from a [`Bytes`] source (what the browser's worker
//! does with the JS buffers) give exactly the tensors that parsing the whole file gives,
//! read the file in pieces no bigger than the header or one tensor, and fail with exactly
//! the errors the whole-file parser gives.

mod common;

use std::cell::Cell;
use std::collections::HashMap;

use common::fixture;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use webformer::engine::checkpoint::{Bytes, Checkpoint};

/// Every float tensor of a safetensors file as f32, the way the loader did it from the
/// whole file before it streamed: the reference.
fn reference(bytes: &[u8]) -> HashMap<String, (Vec<usize>, Vec<f32>, bool)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => continue,
        };
        out.insert(name, (view.shape().to_vec(), data, view.dtype() == Dtype::F16));
    }
    out
}

/// Takes every reference tensor out of the checkpoint and compares bits, and that it says
/// whether the file stored it in f16 (which lets a backend keep it so); then nothing is left.
fn assert_identical(mut ckpt: Checkpoint, want: &HashMap<String, (Vec<usize>, Vec<f32>, bool)>) {
    assert!(!want.is_empty());
    for (name, (shape, data, f16)) in want {
        let got = ckpt.take(name, shape).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&got.data), bits(data), "{name} differs");
        assert_eq!(got.f16, *f16, "{name}: stored as f16?");
    }
    assert!(
        !ckpt.has_prefix(""),
        "the streamed checkpoint has tensors the file has not"
    );
}

/// A file read through [`Bytes`] that records the largest single read and the total read.
struct Counted {
    bytes: Vec<u8>,
    largest: Cell<usize>,
    total: Cell<usize>,
}

impl Counted {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            largest: Cell::new(0),
            total: Cell::new(0),
        }
    }
}

impl Bytes for Counted {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn read_into(&self, offset: usize, out: &mut [u8]) {
        self.largest.set(self.largest.get().max(out.len()));
        self.total.set(self.total.get() + out.len());
        out.copy_from_slice(&self.bytes[offset..offset + out.len()]);
    }
}

fn header_len(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

fn largest_tensor(bytes: &[u8]) -> usize {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors().iter().map(|(_, v)| v.data().len()).max().unwrap()
}

const FIXTURES: [&str; 6] = [
    "bert-uncased-cls",
    "bert-cased-cls",
    "bert-encoder",
    "distilbert-cls",
    "vit-cls",
    "vit-model",
];

#[test]
fn streamed_tensors_are_bit_identical_on_every_fixture() {
    for name in FIXTURES {
        let bytes = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
        let want = reference(&bytes);
        let src = Counted::new(bytes.clone());
        let ckpt = Checkpoint::from_sources(&[("model.safetensors".to_string(), &src as &dyn Bytes)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Read in pieces: never more at once than the header or the largest tensor, and each
        // byte about once (the 8-byte length is read twice).
        let piece = header_len(&bytes).max(largest_tensor(&bytes));
        assert!(
            src.largest.get() <= piece,
            "{name}: a read of {} bytes",
            src.largest.get()
        );
        assert!(src.largest.get() < bytes.len() / 2, "{name}: read whole");
        assert!(
            src.total.get() <= bytes.len() + 16,
            "{name}: read {} of {}",
            src.total.get(),
            bytes.len()
        );
        assert_identical(ckpt, &want);
        // The Vec<u8> path (natively: folders, tests) gives the same.
        let ckpt = Checkpoint::from_files(&[("model.safetensors".to_string(), bytes.clone())]).unwrap();
        assert_identical(ckpt, &want);
    }
}

/// The fixture's tensors again, as F16, BF16 or F32 in turn (with an integer buffer the
/// loader skips), so every supported dtype is read through the streamed path.
fn mixed_dtypes() -> Vec<u8> {
    let bytes = std::fs::read(fixture("bert-uncased-cls").join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let view = st.tensor(name).unwrap();
        if view.dtype() != Dtype::F32 {
            continue;
        }
        let f: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (dtype, data) = match i % 3 {
            0 => (
                Dtype::F16,
                f.iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
            1 => (
                Dtype::BF16,
                f.iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
            _ => (Dtype::F32, view.data().to_vec()),
        };
        owned.push((name.clone(), dtype, view.shape().to_vec(), data));
    }
    owned.push((
        "ids".into(),
        Dtype::I64,
        vec![3],
        [1i64, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
    ));
    let views: HashMap<String, TensorView> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(&views, None).unwrap()
}

#[test]
fn f16_bf16_and_integer_tensors_stream_like_the_whole_file() {
    let bytes = mixed_dtypes();
    let want = reference(&bytes);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensors().iter().any(|(_, v)| v.dtype() == Dtype::F16));
    assert!(st.tensors().iter().any(|(_, v)| v.dtype() == Dtype::BF16));
    let src = Counted::new(bytes.clone());
    let mut ckpt =
        Checkpoint::from_sources(&[("model.safetensors".to_string(), &src as &dyn Bytes)]).unwrap();
    assert!(!ckpt.contains("ids"), "integer buffers are not weights");
    assert!(ckpt.take("ids", &[3]).is_err());
    assert_identical(ckpt, &want);
}

#[test]
fn f16_tensors_can_be_taken_as_stored() {
    let bytes = mixed_dtypes();
    let want = reference(&bytes);
    let mut ckpt = Checkpoint::from_files(&[("model.safetensors".to_string(), bytes)]).unwrap();
    let (mut halves, mut others) = (0, 0);
    for (name, (shape, data, f16)) in &want {
        match ckpt.take_f16(name, shape).unwrap() {
            Some(got) => {
                assert!(*f16, "{name} was not stored as f16");
                let widened: Vec<u32> = got.iter().map(|h| h.to_f32().to_bits()).collect();
                assert_eq!(
                    widened,
                    data.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "{name}"
                );
                assert!(!ckpt.contains(name), "{name} was taken");
                halves += 1;
            }
            None => {
                assert!(!*f16, "{name} was stored as f16");
                // Left in place for `take`.
                assert!(ckpt.take(name, shape).is_ok(), "{name}");
                others += 1;
            }
        }
    }
    assert!(halves > 0 && others > 0);
    // A wrong shape is refused as `take` refuses it.
    let mut ckpt = Checkpoint::from_files(&[("model.safetensors".to_string(), mixed_dtypes())]).unwrap();
    let (name, (shape, _, _)) = want.iter().find(|(_, (_, _, f16))| *f16).unwrap();
    let wrong: Vec<usize> = shape.iter().map(|d| d + 1).collect();
    let e = ckpt.take_f16(name, &wrong).unwrap_err().to_string();
    assert!(e.contains("does not match the config's"), "{e}");
}

#[test]
fn sharded_checkpoints_stream_bit_identically() {
    let bytes = std::fs::read(fixture("bert-uncased-cls").join("model.safetensors")).unwrap();
    let want = reference(&bytes);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let shard = |keep: &[String]| {
        let views: HashMap<String, TensorView> =
            keep.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        safetensors::serialize(&views, None).unwrap()
    };
    let map: HashMap<&String, &str> = a
        .iter()
        .map(|n| (n, "model-00001-of-00002.safetensors"))
        .chain(b.iter().map(|n| (n, "model-00002-of-00002.safetensors")))
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({ "metadata": {}, "weight_map": map })).unwrap();
    let (one, two) = (Counted::new(shard(a)), Counted::new(shard(b)));
    let files: Vec<(String, &dyn Bytes)> = vec![
        ("model.safetensors.index.json".into(), &index as &dyn Bytes),
        ("model-00001-of-00002.safetensors".into(), &one),
        ("model-00002-of-00002.safetensors".into(), &two),
    ];
    let ckpt = Checkpoint::from_sources(&files).unwrap();
    assert!(one.total.get() > 0 && two.total.get() > 0);
    for shard in [&one, &two] {
        let piece = header_len(&shard.bytes).max(largest_tensor(&shard.bytes));
        assert!(
            shard.largest.get() <= piece,
            "a read of {} bytes",
            shard.largest.get()
        );
        assert!(shard.total.get() <= shard.bytes.len() + 16);
    }
    assert_identical(ckpt, &want);
}

/// Broken files: the streamed reader refuses each with the message the whole-file parser gave.
#[test]
fn broken_files_fail_with_the_whole_file_parsers_message() {
    let good = std::fs::read(fixture("bert-uncased-cls").join("model.safetensors")).unwrap();
    let header = header_len(&good);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("shorter than the length", good[..5].to_vec()),
        ("only the length", good[..8].to_vec()),
        ("header cut", good[..header - 10].to_vec()),
        ("header only", good[..header].to_vec()),
        ("data cut", good[..good.len() - 1].to_vec()),
        ("half the data", good[..good.len() / 2].to_vec()),
        ("trailing bytes", [good.clone(), vec![0; 4]].concat()),
        (
            "zip pickle",
            b"PK\x03\x04 and then whatever torch.save wrote".to_vec(),
        ),
        ("raw pickle", b"\x80\x02}q\x00(X\x05\x00\x00\x00hello".to_vec()),
        ("text", b"this is not a model at all, just some text".to_vec()),
    ];
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    cases.push(("header length too large", huge));
    let mut past = good.clone();
    past[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    cases.push(("header length past the end", past));
    let mut bad_json = good.clone();
    bad_json[8] = b'[';
    cases.push(("header not json", bad_json));
    let mut bad_utf8 = good.clone();
    bad_utf8[9] = 0xff;
    cases.push(("header not utf-8", bad_utf8));
    let mut overlong = good.clone();
    let text = String::from_utf8(good[8..header].to_vec()).unwrap();
    // A tensor that claims more bytes than its shape has.
    let (at, _) = text
        .match_indices("\"data_offsets\":[0,")
        .next()
        .expect("a tensor at offset 0");
    overlong[8 + at + "\"data_offsets\":[".len()] = b'1';
    cases.push(("offsets inconsistent", overlong));

    for (what, bytes) in cases {
        let src = Counted::new(bytes.clone());
        let Some(streamed) =
            Checkpoint::from_sources(&[("m.safetensors".to_string(), &src as &dyn Bytes)]).err()
        else {
            panic!("{what}: must fail");
        };
        let streamed = streamed.to_string();
        // Refused from the header: no tensor was read (the 8-byte length is read up to 3 times).
        assert!(
            src.total.get() <= header.min(bytes.len()) + 16,
            "{what}: read {}",
            src.total.get()
        );
        let parser = match SafeTensors::deserialize(&bytes) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{what}: the safetensors crate takes it"),
        };
        if what.contains("pickle") {
            assert!(streamed.contains("PyTorch pickle file"), "{what}: {streamed}");
        } else {
            assert_eq!(
                streamed,
                format!("m.safetensors: not a valid safetensors file ({parser})"),
                "{what}"
            );
        }
    }
}
