//! Prints the instruction-set paths this CPU can run (one per line, best first), for scripts
//! that run the test suite once per forced `BERTH_ISA`.

use berth_kernels::isa::{cpu_features, Isa};

fn main() {
    let f = cpu_features();
    for isa in [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar] {
        if f.supports(isa) {
            println!("{isa}");
        }
    }
}
