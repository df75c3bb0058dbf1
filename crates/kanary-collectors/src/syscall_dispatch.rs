//! The syscall dispatcher (`bpf/syscall_dispatch.bpf.c`): the agent's only programs on the raw
//! syscall tracepoints, which run the per-syscall handlers of the collectors that have them.
//!
//! Every program attached to `tp_btf/sys_enter` or `tp_btf/sys_exit` runs for every syscall of
//! every task, host included, and each further program on the same tracepoint costs every
//! syscall ~40 ns more on our test machine (`docs/adr/0005-syscall-dispatch-on-tp-btf.md`). So a
//! collector that works per syscall (`syscalls`, `file`, `security`) does not attach its
//! programs: it loads them as *handlers* and registers them here, and the dispatcher tail-calls
//! a handler only for the syscall numbers its collector routes to it. Its `load`:
//!
//! 1. after opening, `SyscallDispatch::share` makes the object's copies of the dispatch maps
//!    (`KANARY_SYSCALL_DISPATCH_MAPS()` in `bpf/include/common.h`) the dispatcher's, loading the
//!    dispatcher if no collector has yet;
//! 2. after loading, `SyscallDispatch::register` puts its handler programs in their slots and
//!    routes the syscalls they want to them; the dispatcher's program on `sys_enter` is attached
//!    with the first handler at entry, the one on `sys_exit` with the first handler at exit;
//! 3. it keeps the returned `Registration` for as long as it runs: dropping it unroutes and
//!    removes the handlers, and the last one detaches the dispatcher.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;

use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenMapMut};

use crate::collector::LoadContext;
use crate::error::{attach_error, load_error, map_error, Result};
use crate::kernel::{handle, open_collector};
use crate::skel::syscall_dispatch::{SyscallDispatchSkel, SyscallDispatchSkelBuilder};

pub(crate) use crate::skel::syscall_dispatch::types::syscall_handler as Handler;

/// Entries of a syscall table: `KANARY_SYSCALL_SLOTS` (`bpf/include/types.h`).
pub(crate) const SYSCALL_SLOTS: usize = 512;
/// Name in errors and logs.
const NAME: &str = "syscall_dispatch";
/// Bytes of `struct syscall_routes`: the entry routes, then the exit routes.
const ROUTES_SIZE: usize = 2 * SYSCALL_SLOTS;
// Every handler has a bit of a routes byte.
const _: () = assert!(Handler::SYSCALL_HANDLER_COUNT.0 <= u8::BITS);

/// The syscall dispatcher of one agent: nothing is loaded until a collector shares its maps,
/// nothing attached until one registers a handler.
#[derive(Default)]
pub struct SyscallDispatch {
    loaded: RefCell<Option<Rc<Dispatcher>>>,
}

/// A handler program and the syscall numbers it is to run for.
pub(crate) struct Route<'a> {
    /// The loaded program (`SEC("tp_btf/sys_enter")` or `SEC("tp_btf/sys_exit")`, matching the
    /// side it is registered for).
    pub(crate) program: BorrowedFd<'a>,
    /// Whether it runs for syscall number `nr`.
    pub(crate) wants: &'a dyn Fn(usize) -> bool,
}

/// A collector's handlers, in the dispatcher until this is dropped.
pub(crate) struct Registration {
    dispatcher: Rc<Dispatcher>,
    handler: Handler,
}

/// The loaded dispatcher object. Fields drop in order: the links (detaching) before the
/// object.
struct Dispatcher {
    /// The entry program's link, once a handler runs at entry.
    enter_link: RefCell<Option<Link>>,
    /// The exit program's link, once a handler runs at exit: a program on sys_exit costs every
    /// syscall as much as one on sys_enter, so it is attached only when needed.
    exit_link: RefCell<Option<Link>>,
    enter_handlers: MapHandle,
    exit_handlers: MapHandle,
    routes: MapHandle,
    skel: SyscallDispatchSkel<'static>,
}

impl SyscallDispatch {
    /// The dispatcher, loaded now if no collector asked for it yet.
    fn dispatcher(&self, ctx: &LoadContext<'_>) -> Result<Rc<Dispatcher>> {
        if let Some(dispatcher) = self.loaded.borrow().as_ref() {
            return Ok(Rc::clone(dispatcher));
        }
        let dispatcher = Rc::new(Dispatcher::load(ctx)?);
        *self.loaded.borrow_mut() = Some(Rc::clone(&dispatcher));
        Ok(dispatcher)
    }

    /// Makes a handler object's copies of the dispatch maps the dispatcher's (before it loads:
    /// the kernel checks at load that the programs tail-calling each other are compatible).
    pub(crate) fn share<'obj>(
        &self,
        ctx: &LoadContext<'_>,
        collector: &'static str,
        enter_handlers: &mut OpenMapMut<'obj>,
        exit_handlers: &mut OpenMapMut<'obj>,
        routes: &mut OpenMapMut<'obj>,
    ) -> Result<()> {
        let dispatcher = self.dispatcher(ctx)?;
        for (map, shared) in [
            (enter_handlers, &dispatcher.enter_handlers),
            (exit_handlers, &dispatcher.exit_handlers),
            (routes, &dispatcher.routes),
        ] {
            map.reuse_fd(shared.as_fd())
                .map_err(load_error(collector))?;
        }
        Ok(())
    }

    /// Puts a loaded collector's handler programs in the slots of `handler` and routes the
    /// syscalls they want to them, at entry and at exit; attaches the dispatcher's program on
    /// each side that had none yet. Dropping the result undoes it.
    pub(crate) fn register(
        &self,
        ctx: &LoadContext<'_>,
        handler: Handler,
        enter: Option<Route<'_>>,
        exit: Option<Route<'_>>,
    ) -> Result<Registration> {
        let dispatcher = self.dispatcher(ctx)?;
        // From here on, a failure drops the registration, which undoes what was done.
        let registration = Registration {
            dispatcher: Rc::clone(&dispatcher),
            handler,
        };
        // Programs first, routes second: a routed handler whose slot is still empty would only
        // be skipped, but this way no syscall is dispatched to a half-registered collector.
        for (map, name, route) in [
            (&dispatcher.enter_handlers, "syscall_enter_handlers", &enter),
            (&dispatcher.exit_handlers, "syscall_exit_handlers", &exit),
        ] {
            if let Some(route) = route {
                let fd = route.program.as_raw_fd() as u32;
                map.update(&handler.0.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
                    .map_err(map_error(NAME, name))?;
            }
        }
        dispatcher.update_routes(|routes| {
            add_routes(
                routes,
                handler,
                enter.as_ref().map(|r| r.wants),
                exit.as_ref().map(|r| r.wants),
            )
        })?;
        dispatcher.attach(enter.is_some(), exit.is_some())?;
        Ok(registration)
    }
}

impl Dispatcher {
    /// Opens and loads the dispatcher object (it shares the container filter like every
    /// collector object, although its programs do not use it).
    fn load(ctx: &LoadContext<'_>) -> Result<Self> {
        let open = open_collector!(SyscallDispatchSkelBuilder, ctx, NAME)?;
        let skel = open.load().map_err(load_error(NAME))?;
        Ok(Dispatcher {
            enter_link: RefCell::new(None),
            exit_link: RefCell::new(None),
            enter_handlers: handle(
                &skel.maps.syscall_enter_handlers,
                NAME,
                "syscall_enter_handlers",
            )?,
            exit_handlers: handle(
                &skel.maps.syscall_exit_handlers,
                NAME,
                "syscall_exit_handlers",
            )?,
            routes: handle(&skel.maps.syscall_routes, NAME, "syscall_routes")?,
            skel,
        })
    }

    /// Attaches the entry program if `enter` and the exit program if `exit`, unless they are.
    fn attach(&self, enter: bool, exit: bool) -> Result<()> {
        let progs = &self.skel.progs;
        for (wanted, link, program, hook) in [
            (
                enter,
                &self.enter_link,
                &progs.kanary_dispatch_enter,
                "tp_btf/sys_enter",
            ),
            (
                exit,
                &self.exit_link,
                &progs.kanary_dispatch_exit,
                "tp_btf/sys_exit",
            ),
        ] {
            let mut link = link.borrow_mut();
            if wanted && link.is_none() {
                *link = Some(program.attach().map_err(attach_error(NAME, hook))?);
            }
        }
        Ok(())
    }

    /// Rewrites the routes (the one entry of `syscall_routes`) with `change`.
    fn update_routes(&self, change: impl FnOnce(&mut [u8])) -> Result<()> {
        let key = 0u32.to_ne_bytes();
        let mut routes = self
            .routes
            .lookup(&key, MapFlags::ANY)
            .map_err(map_error(NAME, "syscall_routes"))?
            .unwrap_or_default();
        routes.resize(ROUTES_SIZE, 0);
        change(&mut routes);
        self.routes
            .update(&key, &routes, MapFlags::ANY)
            .map_err(map_error(NAME, "syscall_routes"))
    }

    /// Unroutes `handler` and empties its slots.
    fn unregister(&self, handler: Handler) -> Result<()> {
        self.update_routes(|routes| remove_routes(routes, handler))?;
        for (map, name) in [
            (&self.enter_handlers, "syscall_enter_handlers"),
            (&self.exit_handlers, "syscall_exit_handlers"),
        ] {
            match map.delete(&handler.0.to_ne_bytes()) {
                Ok(()) => {}
                // It had no program on this side.
                Err(error) if error.kind() == libbpf_rs::ErrorKind::NotFound => {}
                Err(error) => return Err(map_error(NAME, name)(error)),
            }
        }
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Err(error) = self.dispatcher.unregister(self.handler) {
            tracing::warn!(%error, handler = self.handler.0, "could not unregister a syscall handler");
        }
    }
}

/// The syscall table of a handler that decodes syscall numbers itself (`kanary_syscall_code()`
/// in `bpf/include/common.h`): entry `nr` holds the code `calls` gives the syscall of that
/// number on this architecture, every other entry 0 ("not watched"). A name this architecture
/// has no syscall for is logged and left out, so the rest of the collector still works.
pub(crate) fn syscall_table(calls: &[(&str, u8)], collector: &'static str) -> [u8; SYSCALL_SLOTS] {
    let mut table = [0; SYSCALL_SLOTS];
    for &(name, code) in calls {
        match kanary_model::syscalls::number(name).and_then(|nr| table.get_mut(nr as usize)) {
            Some(entry) => *entry = code,
            None => tracing::info!(
                collector,
                syscall = name,
                "this architecture has no such syscall; not watched"
            ),
        }
    }
    table
}

/// The bit of `handler` in a routes byte.
fn bit(handler: Handler) -> u8 {
    1u8.checked_shl(handler.0).unwrap_or(0)
}

/// Sets `handler`'s bit in the entry routes of the syscalls `enter` wants and in the exit
/// routes of those `exit` wants (`routes` is a `struct syscall_routes`).
fn add_routes(
    routes: &mut [u8],
    handler: Handler,
    enter: Option<&dyn Fn(usize) -> bool>,
    exit: Option<&dyn Fn(usize) -> bool>,
) {
    let (at_enter, at_exit) = routes.split_at_mut(SYSCALL_SLOTS.min(routes.len()));
    for (side, wants) in [(at_enter, enter), (at_exit, exit)] {
        let Some(wants) = wants else { continue };
        for (nr, entry) in side.iter_mut().enumerate() {
            if wants(nr) {
                *entry |= bit(handler);
            }
        }
    }
}

/// Clears `handler`'s bit everywhere in `routes`.
fn remove_routes(routes: &mut [u8], handler: Handler) {
    for entry in routes {
        *entry &= !bit(handler);
    }
}

/// Shares the dispatch maps of a handler object's open skeleton maps (`open.maps`) with the
/// dispatcher: `share_syscall_dispatch!(ctx, NAME, open.maps)` evaluates to the `Result` of
/// [`SyscallDispatch::share`]. A macro because every skeleton has its own maps type.
macro_rules! share_syscall_dispatch {
    ($ctx:expr, $collector:expr, $maps:expr) => {{
        let maps = &mut $maps;
        $ctx.syscall_dispatch.share(
            $ctx,
            $collector,
            &mut maps.syscall_enter_handlers,
            &mut maps.syscall_exit_handlers,
            &mut maps.syscall_routes,
        )
    }};
}
pub(crate) use share_syscall_dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_tables_hold_the_codes_of_known_syscalls_only() {
        let table = syscall_table(
            &[("read", 5), ("openat", 2), ("no_such_syscall", 9)],
            "test",
        );
        assert_eq!(table[0], 5);
        assert_eq!(table[257], 2);
        assert_eq!(table.iter().filter(|&&code| code != 0).count(), 2);
    }

    #[test]
    fn routes_set_and_clear_only_their_handlers_bit() {
        let mut routes = vec![0u8; ROUTES_SIZE];
        let all = |_: usize| true;
        let openat = |nr: usize| nr == 257;
        add_routes(
            &mut routes,
            Handler::SYSCALL_HANDLER_SYSCALLS,
            Some(&all),
            None,
        );
        add_routes(
            &mut routes,
            Handler::SYSCALL_HANDLER_FILE,
            Some(&openat),
            Some(&openat),
        );
        assert!(routes[..SYSCALL_SLOTS].iter().all(|&r| r & 1 == 1));
        assert!(routes[SYSCALL_SLOTS..].iter().all(|&r| r & 1 == 0));
        assert_eq!(routes[257], 0b11);
        assert_eq!(routes[SYSCALL_SLOTS + 257], 0b10);
        assert_eq!(routes.iter().filter(|&&r| r & 0b10 != 0).count(), 2);

        remove_routes(&mut routes, Handler::SYSCALL_HANDLER_SYSCALLS);
        assert_eq!(routes[257], 0b10);
        assert_eq!(routes[0], 0);
        remove_routes(&mut routes, Handler::SYSCALL_HANDLER_FILE);
        assert!(routes.iter().all(|&r| r == 0));
    }

    #[test]
    fn a_handlers_bit_is_its_index() {
        assert_eq!(bit(Handler::SYSCALL_HANDLER_SYSCALLS), 0b001);
        assert_eq!(bit(Handler::SYSCALL_HANDLER_SECURITY), 0b100);
    }
}
