//! Files compiled into `kiln` (see `imager/build.rs`): the `base` overlay and `init`.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
