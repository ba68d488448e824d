//! Prints the instruction-set paths this CPU can run (one per line, best first), for scripts
//! that run the test suite once per forced `BERTH_ISA`. With `--variants`, prints every table
//! the tests hold against the reference instead, as `path int8-kernel bf16-kernel`.

use berth_kernels::isa::{cpu_features, Isa};

fn main() {
    if std::env::args().any(|a| a == "--variants") {
        for t in berth_kernels::variants() {
            println!("{} {} {}", t.isa, t.int8, t.bf16);
        }
        return;
    }
    let f = cpu_features();
    for isa in [Isa::Amx, Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar] {
        if f.supports(isa) {
            println!("{isa}");
        }
    }
}
