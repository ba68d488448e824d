//! Semantic search: embed a small corpus once, then find each query's nearest sentences.
//!
//!     cargo run --release -p berth --example semantic_search -- all-MiniLM-L6-v2.berth
//!
//! (`berth convert` makes the file from a sentence-transformers checkpoint; scripts/test.sh
//! runs this on all-MiniLM-L6-v2 and checks each query's best hit.)

use berth::Model;

const CORPUS: [&str; 10] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "A cheetah is running behind its prey.",
    "The new movie is awesome.",
];

/// Each query and the corpus sentence it should find first.
const QUERIES: [(&str, usize); 4] = [
    ("A man is eating pasta.", 0),
    ("Someone in a gorilla costume is playing a set of drums.", 7),
    ("A cheetah chases prey on across a field.", 8),
    ("The film was great.", 9),
];

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: semantic_search MODEL.berth")?;
    let model = Model::load(&path)?;
    let corpus = model.embed(&CORPUS)?;
    let queries: Vec<&str> = QUERIES.iter().map(|q| q.0).collect();
    let found = model.embed(&queries)?;
    let mut misses = 0;
    for ((query, want), q) in QUERIES.iter().zip(found.iter()) {
        let mut hits: Vec<(f32, usize)> = corpus
            .iter()
            .enumerate()
            .map(|(i, c)| (cosine(q, c), i))
            .collect();
        hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("{query}");
        for &(score, i) in &hits[..3] {
            println!("  {score:.4}  {}", CORPUS[i]);
        }
        if hits[0].1 != *want {
            println!("  expected first: {}", CORPUS[*want]);
            misses += 1;
        }
    }
    match misses {
        0 => Ok(()),
        n => Err(format!("{n} queries found the wrong sentence first").into()),
    }
}
