//! [`per_backend!`]: every per-backend case written once, run on every backend.
//!
//! The model is CPython's `BaseSelectorTestCase`, a mixin of test methods that each
//! selector's test class inherits: here a case is a function of the [`Backend`], written
//! inside the macro, and the macro adds one `#[test]` per backend next to it.
//!
//! [`Backend`]: readyloop::selector::Backend

/// Generates one `#[test]` per backend for each case function written inside it.
///
/// ```ignore
/// per_backend!(
///     /// A case: a function of the backend, kept as written.
///     fn tcp_echo_messages(backend: Backend) {
///         // ...
///     }
///
///     fn another_case(backend: Backend) {
///         // ...
///     }
/// );
/// ```
///
/// Each case `NAME` keeps its function and gets a module `NAME` with one test per
/// backend (`select`, `poll`, `epoll`, `epoll_et`, `mio`, `polling`), so a failure reads
/// `tcp_echo_messages::epoll_et`. Cases stay next to their helpers: a file may invoke
/// the macro as often as it likes, there is no list of names to keep. To run one backend
/// only: `cargo test --test echo -- ::epoll_et` (`::poll` also matches `::polling`, and
/// `::epoll` also `::epoll_et`: add `--skip ::polling` / `--skip ::epoll_et`).
///
/// Two attributes at the very start of an invocation (above the first case's doc
/// comment) apply to every case of that invocation:
///
/// * `#[backends(select, epoll_et)]`: only the backends named (the module names above),
///   for cases that mean nothing on the others or are too slow to run six times.
/// * `#[each(reuseport = AcceptStrategy::ReusePort, shared = AcceptStrategy::Shared)]`:
///   a second parameter; each case is `fn NAME(backend: Backend, x: T)` and gets one
///   test per backend per value, `NAME::epoll_et::reuseport`. `#[backends(..)]`, if
///   any, goes before it.
///
/// Anywhere else they are not this macro's, and the compiler says it cannot find them.
///
/// Invoke it with parentheses, `per_backend!( ... );`: rustfmt formats the cases inside
/// as ordinary items then (it leaves a `per_backend! { ... }` body alone).
macro_rules! per_backend {
    // Every case of this invocation on a backend subset, with a second parameter.
    (
        #[backends $b:tt]
        #[each $each:tt]
        $($(#[$m:meta])* fn $name:ident $p:tt $body:block)+
    ) => {
        $(per_backend!(@case $b $each $(#[$m])* fn $name $p $body);)+
    };
    // Every case of this invocation on a backend subset.
    (
        #[backends $b:tt]
        $($(#[$m:meta])* fn $name:ident $p:tt $body:block)+
    ) => {
        $(per_backend!(@case $b () $(#[$m])* fn $name $p $body);)+
    };
    // Every case of this invocation with a second parameter, on every backend.
    (
        #[each $each:tt]
        $($(#[$m:meta])* fn $name:ident $p:tt $body:block)+
    ) => {
        $(
            per_backend!(
                @case (select, poll, epoll, epoll_et, mio, polling) $each
                $(#[$m])* fn $name $p $body
            );
        )+
    };
    // The case function, and a module of one test per backend.
    (@case ($($b:ident),+ $(,)?) () $(#[$m:meta])* fn $name:ident $p:tt $body:block) => {
        $(#[$m])* fn $name $p $body

        mod $name {
            $(
                #[test]
                fn $b() {
                    super::$name(per_backend!(@backend $b));
                }
            )+
        }
    };
    (@case ($($b:ident),+ $(,)?) $each:tt $(#[$m:meta])* fn $name:ident $p:tt $body:block) => {
        $(#[$m])* fn $name $p $body

        mod $name {
            $(per_backend!(@each $b $name $each);)+
        }
    };
    (@each $b:ident $name:ident ($($v:ident = $e:expr),+ $(,)?)) => {
        mod $b {
            #[allow(unused_imports)]
            use super::super::*;
            $(
                #[test]
                fn $v() {
                    super::super::$name(per_backend!(@backend $b), $e);
                }
            )+
        }
    };
    (@backend select) => { readyloop::selector::Backend::Select };
    (@backend poll) => { readyloop::selector::Backend::Poll };
    (@backend epoll) => { readyloop::selector::Backend::Epoll };
    (@backend epoll_et) => { readyloop::selector::Backend::EpollEt };
    (@backend mio) => { readyloop::selector::Backend::Mio };
    (@backend polling) => { readyloop::selector::Backend::Polling };
    // The backends above, for the check that they are `Backend::ALL`.
    (@names) => { ["select", "poll", "epoll", "epoll_et", "mio", "polling"] };
    // Any number of plain cases, each on every backend.
    ($($(#[$m:meta])* fn $name:ident $p:tt $body:block)*) => {
        $(
            per_backend!(
                @case (select, poll, epoll, epoll_et, mio, polling) ()
                $(#[$m])* fn $name $p $body
            );
        )*
    };
}
