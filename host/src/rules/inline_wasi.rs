//! A JS rule's module without the WASI preview1 adapter.
//!
//! The JS runtime is built for `wasm32-wasip1`, so its module imports ten preview1
//! functions. The usual way to make it a component puts wasmtime's preview1 adapter beside
//! it: a second core module with its own memory, table, globals and state, instantiated and
//! reset with every execution. A rule needs none of what the adapter offers (no files, no
//! environment, stdout and stderr go nowhere), so [`inline_preview1`] writes the ten
//! functions into the module itself instead:
//!
//! - `clock_time_get` reads `wasi:clocks/wall-clock` (realtime) or `monotonic-clock`;
//! - `random_get` fills the buffer from `wasi:random/random.get-random-u64`;
//! - `environ_get`/`environ_sizes_get` report an empty environment;
//! - `fd_write` to stdout or stderr succeeds and discards, as the host's sinks did;
//! - the other descriptor calls fail with `EBADF` (there are no descriptors);
//! - `proc_exit` traps.
//!
//! The module then imports only our world and those three WASI interfaces, which the
//! engine's linker provides. Every index the module uses is renumbered
//! (`wasm_encoder::reencode`); a module importing anything else of preview1, or laid out
//! otherwise than a wasi-libc program is, is left alone and gets the adapter as before.

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    CodeSection, ConstExpr, EntityType, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, MemArg, TypeSection, ValType,
};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType as ParsedValType};
use wit_parser::Resolve;

const PREVIEW1: &str = "wasi_snapshot_preview1";

/// The WASI interfaces the inlined functions call, as a world for wit-component: only the
/// functions used, at the lowest 0.2 version (the linker's 0.2.x satisfies it).
const WASI_WORLD: [(&str, &str); 3] = [
    (
        "clocks.wit",
        "package wasi:clocks@0.2.0;
         interface monotonic-clock { type instant = u64; now: func() -> instant; }
         interface wall-clock {
             record datetime { seconds: u64, nanoseconds: u32 }
             now: func() -> datetime;
         }",
    ),
    (
        "random.wit",
        "package wasi:random@0.2.0;
         interface random { get-random-u64: func() -> u64; }",
    ),
    (
        "world.wit",
        "package tokenhost:inline-wasi;
         world inline-wasi {
             import wasi:clocks/wall-clock@0.2.0;
             import wasi:clocks/monotonic-clock@0.2.0;
             import wasi:random/random@0.2.0;
         }",
    ),
];

/// One function of `WASI_WORLD` the inlined functions call, with its core signature
/// (canonical ABI).
struct WasiImport {
    module: &'static str,
    name: &'static str,
    params: &'static [ValType],
    results: &'static [ValType],
}

/// Appended after the kept imports, in this order; `WALL_NOW` and so on index it.
const WASI_IMPORTS: [WasiImport; 3] = [
    WasiImport {
        module: "wasi:clocks/wall-clock@0.2.0",
        name: "now",
        // The `datetime` goes to the address given.
        params: &[ValType::I32],
        results: &[],
    },
    WasiImport {
        module: "wasi:clocks/monotonic-clock@0.2.0",
        name: "now",
        params: &[],
        results: &[ValType::I64],
    },
    WasiImport {
        module: "wasi:random/random@0.2.0",
        name: "get-random-u64",
        params: &[],
        results: &[ValType::I64],
    },
];
const WALL_NOW: u32 = 0;
const MONOTONIC_NOW: u32 = 1;
const RANDOM_U64: u32 = 2;

// WASI preview1 errno values.
const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;

/// A preview1 function this module knows how to write, and the signature it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shim {
    ClockTimeGet,
    RandomGet,
    EnvironGet,
    EnvironSizesGet,
    FdWrite,
    FdRead,
    FdSeek,
    FdClose,
    FdFdstatGet,
    ProcExit,
}

impl Shim {
    fn named(name: &str) -> Option<Shim> {
        Some(match name {
            "clock_time_get" => Shim::ClockTimeGet,
            "random_get" => Shim::RandomGet,
            "environ_get" => Shim::EnvironGet,
            "environ_sizes_get" => Shim::EnvironSizesGet,
            "fd_write" => Shim::FdWrite,
            "fd_read" => Shim::FdRead,
            "fd_seek" => Shim::FdSeek,
            "fd_close" => Shim::FdClose,
            "fd_fdstat_get" => Shim::FdFdstatGet,
            "proc_exit" => Shim::ProcExit,
            _ => return None,
        })
    }

    fn signature(self) -> (&'static [ParsedValType], &'static [ParsedValType]) {
        use ParsedValType::{I32, I64};
        match self {
            Shim::ClockTimeGet => (&[I32, I64, I32], &[I32]),
            Shim::RandomGet | Shim::EnvironGet | Shim::EnvironSizesGet | Shim::FdFdstatGet => {
                (&[I32, I32], &[I32])
            }
            Shim::FdWrite | Shim::FdRead => (&[I32, I32, I32, I32], &[I32]),
            Shim::FdSeek => (&[I32, I64, I32, I32], &[I32]),
            Shim::FdClose => (&[I32], &[I32]),
            Shim::ProcExit => (&[I32], &[]),
        }
    }
}

/// What the rewrite needs to know of the module, read before writing anything.
#[derive(Debug)]
struct Layout {
    /// Per imported function, in order: `None` if kept, or the shim replacing it.
    imported: Vec<Option<Shim>>,
    /// The imported functions' type indices, in order.
    imported_types: Vec<u32>,
    defined_functions: u32,
    types: u32,
    globals: u32,
    /// The module's `cabi_realloc` (where the wall clock's result goes).
    cabi_realloc: u32,
}

impl Layout {
    /// The module's layout, if it is one this rewrite handles.
    fn read(module: &[u8]) -> Result<Option<Layout>, wasmparser::BinaryReaderError> {
        let mut func_types: Vec<(Vec<ParsedValType>, Vec<ParsedValType>)> = Vec::new();
        let mut imported = Vec::new();
        let mut imported_types = Vec::new();
        let mut defined_functions = 0;
        let mut globals = 0;
        let mut has_globals = false;
        let mut memories = 0;
        let mut cabi_realloc = None;
        for payload in Parser::new(0).parse_all(module) {
            match payload? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group?.into_types() {
                            let wasmparser::CompositeInnerType::Func(f) = &ty.composite_type.inner
                            else {
                                return Ok(None);
                            };
                            func_types.push((f.params().to_vec(), f.results().to_vec()));
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        match import.ty {
                            TypeRef::Func(ty) => {
                                let shim = if import.module == PREVIEW1 {
                                    let Some(shim) = Shim::named(import.name) else {
                                        return Ok(None);
                                    };
                                    let (params, results) = shim.signature();
                                    match func_types.get(ty as usize) {
                                        Some((p, r)) if p == params && r == results => {}
                                        _ => return Ok(None),
                                    }
                                    Some(shim)
                                } else {
                                    None
                                };
                                imported.push(shim);
                                imported_types.push(ty);
                            }
                            // Memories, tables or globals from outside: not a wasi-libc
                            // program's layout.
                            _ => return Ok(None),
                        }
                    }
                }
                Payload::FunctionSection(reader) => defined_functions = reader.count(),
                Payload::GlobalSection(reader) => {
                    has_globals = true;
                    globals = reader.count();
                }
                Payload::MemorySection(reader) => memories = reader.count(),
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        if export.name == "cabi_realloc" && export.kind == ExternalKind::Func {
                            cabi_realloc = Some(export.index);
                        }
                    }
                }
                _ => {}
            }
        }
        // The module's own allocator, not an import.
        let Some(cabi_realloc) = cabi_realloc.filter(|&f| f as usize >= imported.len()) else {
            return Ok(None);
        };
        if memories != 1 || !has_globals || !imported.iter().any(Option::is_some) {
            return Ok(None);
        }
        Ok(Some(Layout {
            imported,
            imported_types,
            defined_functions,
            types: func_types.len() as u32,
            globals,
            cabi_realloc,
        }))
    }

    fn kept_imports(&self) -> u32 {
        self.imported.iter().filter(|s| s.is_none()).count() as u32
    }

    /// New function index of the WASI import `n` (`WALL_NOW`, `MONOTONIC_NOW`, `RANDOM_U64`).
    fn wasi_import(&self, n: u32) -> u32 {
        self.kept_imports() + n
    }

    /// New function index of each old one.
    fn function_map(&self) -> Vec<u32> {
        let kept = self.kept_imports();
        let defined_start = kept + WASI_IMPORTS.len() as u32;
        let shims_start = defined_start + self.defined_functions;
        let mut map = Vec::with_capacity(self.imported.len() + self.defined_functions as usize);
        let (mut next_kept, mut next_shim) = (0, 0);
        for shim in &self.imported {
            match shim {
                None => {
                    map.push(next_kept);
                    next_kept += 1;
                }
                Some(_) => {
                    map.push(shims_start + next_shim);
                    next_shim += 1;
                }
            }
        }
        map.extend((0..self.defined_functions).map(|d| defined_start + d));
        map
    }
}

/// Renumbers functions (imports removed and added) and appends the shims, their types and
/// the scratch global.
struct Rewriter<'a> {
    layout: &'a Layout,
    functions: Vec<u32>,
}

impl Reencode for Rewriter<'_> {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        // Out of range is impossible in a valid module; validate() rejects what comes out.
        Ok(self.functions.get(func as usize).copied().unwrap_or(func))
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_type_section(self, types, section)?;
        // Type `layout.types + n`: WASI import `n`'s.
        for import in &WASI_IMPORTS {
            types.ty().function(
                import.params.iter().copied(),
                import.results.iter().copied(),
            );
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        for import in section.into_imports() {
            let import = import?;
            if import.module != PREVIEW1 {
                let ty = self.entity_type(import.ty)?;
                imports.import(import.module, import.name, ty);
            }
        }
        for (n, import) in (0..).zip(&WASI_IMPORTS) {
            let ty = EntityType::Function(self.layout.types + n);
            imports.import(import.module, import.name, ty);
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_function_section(self, functions, section)?;
        for (_, ty) in self.shims() {
            functions.function(ty);
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_global_section(self, globals, section)?;
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_code_section(self, code, section)?;
        let bodies = Bodies {
            wall_now: self.layout.wasi_import(WALL_NOW),
            monotonic_now: self.layout.wasi_import(MONOTONIC_NOW),
            random_u64: self.layout.wasi_import(RANDOM_U64),
            cabi_realloc: self.functions[self.layout.cabi_realloc as usize],
            scratch: self.layout.globals,
        };
        for (shim, _) in self.shims() {
            code.function(&bodies.of(shim));
        }
        Ok(())
    }
}

impl Rewriter<'_> {
    /// The shims in the order they are appended, with their type indices.
    fn shims(&self) -> Vec<(Shim, u32)> {
        self.layout
            .imported
            .iter()
            .zip(&self.layout.imported_types)
            .filter_map(|(shim, ty)| shim.map(|s| (s, *ty)))
            .collect()
    }
}

/// The shims' bodies, given where the functions and the global they use are.
struct Bodies {
    wall_now: u32,
    monotonic_now: u32,
    random_u64: u32,
    cabi_realloc: u32,
    /// A mutable i32 global: the 16 bytes where the wall clock writes its `datetime`,
    /// allocated with the module's own `cabi_realloc` on first use (0 until then).
    scratch: u32,
}

fn mem(offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        memory_index: 0,
    }
}

impl Bodies {
    fn of(&self, shim: Shim) -> Function {
        use wasm_encoder::BlockType;
        match shim {
            Shim::ClockTimeGet => {
                // (id, precision, time_ptr) -> errno; local 3: the scratch pointer.
                let mut f = Function::new([(1, ValType::I32)]);
                let mut i = f.instructions();
                i.local_get(0)
                    .i32_eqz()
                    .if_(BlockType::Result(ValType::I32));
                // Realtime: wall-clock `now` into the scratch area, then seconds * 1e9 + ns.
                i.global_get(self.scratch)
                    .local_tee(3)
                    .i32_eqz()
                    .if_(BlockType::Empty);
                i.i32_const(0)
                    .i32_const(0)
                    .i32_const(8)
                    .i32_const(16)
                    .call(self.cabi_realloc)
                    .local_tee(3)
                    .global_set(self.scratch);
                i.end();
                i.local_get(3).call(self.wall_now);
                i.local_get(2)
                    .local_get(3)
                    .i64_load(mem(0, 3))
                    .i64_const(1_000_000_000)
                    .i64_mul()
                    .local_get(3)
                    .i64_load32_u(mem(8, 2))
                    .i64_add()
                    .i64_store(mem(0, 0))
                    .i32_const(0);
                i.else_();
                i.local_get(0)
                    .i32_const(1)
                    .i32_eq()
                    .if_(BlockType::Result(ValType::I32));
                i.local_get(2)
                    .call(self.monotonic_now)
                    .i64_store(mem(0, 0))
                    .i32_const(0);
                i.else_().i32_const(ERRNO_INVAL).end();
                i.end().end();
                f
            }
            Shim::RandomGet => {
                // (buf, len) -> errno; local 2: the byte index, local 3: random bits left.
                let mut f = Function::new([(1, ValType::I32), (1, ValType::I64)]);
                let mut i = f.instructions();
                i.block(BlockType::Empty).loop_(BlockType::Empty);
                i.local_get(2).local_get(1).i32_ge_u().br_if(1);
                // Eight bytes from each u64.
                i.local_get(2)
                    .i32_const(7)
                    .i32_and()
                    .i32_eqz()
                    .if_(BlockType::Empty);
                i.call(self.random_u64).local_set(3).end();
                i.local_get(0)
                    .local_get(2)
                    .i32_add()
                    .local_get(3)
                    .i64_store8(mem(0, 0));
                i.local_get(3).i64_const(8).i64_shr_u().local_set(3);
                i.local_get(2).i32_const(1).i32_add().local_set(2);
                i.br(0).end().end();
                i.i32_const(0).end();
                f
            }
            Shim::EnvironGet => constant(0),
            Shim::EnvironSizesGet => {
                // (count_ptr, size_ptr) -> errno: no variables, no bytes.
                let mut f = Function::new([]);
                let mut i = f.instructions();
                i.local_get(0).i32_const(0).i32_store(mem(0, 0));
                i.local_get(1).i32_const(0).i32_store(mem(0, 0));
                i.i32_const(0).end();
                f
            }
            Shim::FdWrite => {
                // (fd, iovs, iovs_len, nwritten_ptr) -> errno. Stdout and stderr take every
                // byte and keep none; local 4: the iovec index, local 5: bytes so far.
                let mut f = Function::new([(2, ValType::I32)]);
                let mut i = f.instructions();
                i.local_get(0)
                    .i32_const(1)
                    .i32_sub()
                    .i32_const(1)
                    .i32_gt_u();
                i.if_(BlockType::Empty)
                    .i32_const(ERRNO_BADF)
                    .return_()
                    .end();
                i.block(BlockType::Empty).loop_(BlockType::Empty);
                i.local_get(4).local_get(2).i32_ge_u().br_if(1);
                // iovec i is { buf: u32, buf_len: u32 } at iovs + 8 * i.
                i.local_get(5)
                    .local_get(1)
                    .local_get(4)
                    .i32_const(3)
                    .i32_shl()
                    .i32_add()
                    .i32_load(mem(4, 0))
                    .i32_add()
                    .local_set(5);
                i.local_get(4).i32_const(1).i32_add().local_set(4);
                i.br(0).end().end();
                i.local_get(3).local_get(5).i32_store(mem(0, 0));
                i.i32_const(0).end();
                f
            }
            Shim::FdRead | Shim::FdSeek | Shim::FdClose | Shim::FdFdstatGet => constant(ERRNO_BADF),
            Shim::ProcExit => {
                let mut f = Function::new([]);
                f.instructions().unreachable().end();
                f
            }
        }
    }
}

/// A function that returns `errno` whatever its arguments.
fn constant(errno: i32) -> Function {
    let mut f = Function::new([]);
    f.instructions().i32_const(errno).end();
    f
}

/// Why the rewrite failed on a module it had accepted: a bug here, never the rule's fault.
#[derive(Debug, thiserror::Error)]
#[error("cannot inline WASI into the rule's module: {0}")]
pub(crate) struct InlineError(String);

/// `module` with its preview1 imports written inside it, or `None` if it imports something
/// this rewrite does not provide (it then needs the adapter).
pub(crate) fn inline_preview1(module: &[u8]) -> Result<Option<Vec<u8>>, InlineError> {
    let err = |e: &dyn std::fmt::Display| InlineError(e.to_string());
    let Some(layout) = Layout::read(module).map_err(|e| err(&e))? else {
        return Ok(None);
    };
    let mut rewriter = Rewriter {
        functions: layout.function_map(),
        layout: &layout,
    };
    let mut out = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut out, Parser::new(0), module)
        .map_err(|e| err(&e))?;
    let mut bytes = out.finish();
    let mut resolve = Resolve::default();
    let mut package = None;
    for (path, source) in WASI_WORLD {
        package = Some(resolve.push_str(path, source).map_err(|e| err(&e))?);
    }
    // The world's package is the last one pushed.
    let world = resolve
        .select_world(package.as_slice(), Some("inline-wasi"))
        .map_err(|e| err(&e))?;
    wit_component::embed_component_metadata(
        &mut bytes,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| err(&e))?;
    // Validated once, with the component `componentize` makes of it.
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use wasmtime::component::Component;

    use crate::rules::{Limits, RuleEngine};

    /// The imports of a JS rule's component, by name.
    fn imports_of_a_js_rule() -> Vec<String> {
        let engine = RuleEngine::new(Limits::default()).unwrap();
        let wasm = engine
            .componentize_js("module.exports = function (c, s, a, ctx, cb) { cb(null, {}); };")
            .unwrap();
        let component = Component::new(&engine.engine, &wasm).unwrap();
        let mut names: Vec<String> = component
            .component_type()
            .imports(&engine.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_js_rule_imports_its_world_and_three_wasi_interfaces_only() {
        let imports = imports_of_a_js_rule();
        let wasi: Vec<&String> = imports.iter().filter(|n| n.starts_with("wasi:")).collect();
        assert_eq!(
            wasi,
            [
                "wasi:clocks/monotonic-clock@0.2.0",
                "wasi:clocks/wall-clock@0.2.0",
                "wasi:random/random@0.2.0"
            ],
            "the preview1 adapter would bring wasi:cli, wasi:filesystem, wasi:io: {imports:?}"
        );
        assert!(
            imports
                .iter()
                .all(|n| n.starts_with("wasi:") || n.starts_with("tokenhost:rule/") || n == "log"),
            "{imports:?}"
        );
    }
}
