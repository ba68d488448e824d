//! Reranking: order candidate passages by relevance to a query with `Model::rerank`. A
//! cross-encoder (a sequence-classification checkpoint such as ms-marco-MiniLM-L-6-v2) scores
//! each (query, passage) pair; an embedding model scores cosine similarity.
//!
//!     cargo run --release -p berth --example rerank -- model.berth
//!
//! scripts/test.sh runs this on all-MiniLM-L6-v2 and checks the relevant passages come first.

use berth::Model;

const QUERY: &str = "How do plants make their food?";

/// Passages, the relevant ones first.
const PASSAGES: [&str; 6] = [
    "Plants make their own food through photosynthesis, using sunlight, water and carbon dioxide.",
    "Chlorophyll in leaves captures light energy that plants turn into sugar.",
    "The stock market closed higher on Tuesday after a volatile session.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Football fans gathered in the square to watch the final.",
    "The train to the airport leaves every fifteen minutes.",
];
const RELEVANT: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: rerank MODEL.berth")?;
    let model = Model::load(&path)?;
    // The passages in scrambled order, as a first-stage retriever might return them.
    let order = [4, 1, 3, 5, 0, 2];
    let candidates: Vec<&str> = order.iter().map(|&i| PASSAGES[i]).collect();
    let ranked = model.rerank(QUERY, &candidates, Some(4))?;
    println!("{QUERY}");
    for r in &ranked {
        println!("  {:.4}  {}", r.score, candidates[r.index]);
    }
    let top: Vec<usize> = ranked[..RELEVANT].iter().map(|r| order[r.index]).collect();
    match top.iter().all(|&i| i < RELEVANT) {
        true => Ok(()),
        false => Err(format!("the relevant passages are not first: {top:?}").into()),
    }
}
