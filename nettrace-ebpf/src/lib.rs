#![no_std]
// The library target exists so that `nettrace` can declare a build-dependency
// on this crate (see nettrace/Cargo.toml); the programs live in the binaries,
// one eBPF object each.

/// What every eBPF object needs besides its programs: a panic handler (the
/// programs cannot panic; `no_std` wants one) and the license the kernel
/// checks. GPL-compatible: the programs use GPL-only helpers
/// (probe_read_kernel, get_stackid, ringbuf).
#[macro_export]
macro_rules! object_glue {
    () => {
        #[cfg(not(test))]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }

        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
    };
}
