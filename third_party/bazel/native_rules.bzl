"""Stand-ins for the repositories Bazel 4 would download for every build.

Bazel 4's own tools load `@rules_cc//cc:defs.bzl` (the C++ toolchain that
`cc_configure` generates, `@bazel_tools//tools/cpp`) and
`@rules_java//java:defs.bzl` (`@bazel_tools//tools/jdk`, whose toolchains
every build resolves), and Bazel fetches both repositories from GitHub unless
the WORKSPACE file defines them first. The versions Bazel 4 pins only wrap
Bazel's native rules, so these do the same, and the build works offline.
Debian's bazel-rules-cc (0.0.4) cannot stand in: it loads `use_cpp_toolchain`
from `@bazel_tools`, which Bazel 4 does not have.

Every test target also depends on `@remote_coverage_tools` (a zip of Java
tools that only `bazel coverage` runs); `no_coverage_tools` gives it targets
that say so instead of a download.

A workspace that already has these repositories suited to its Bazel needs
none of this.
"""

_CC_RULES = [
    "cc_binary",
    "cc_import",
    "cc_library",
    "cc_proto_library",
    "cc_test",
    "cc_toolchain",
    "cc_toolchain_suite",
    "fdo_prefetch_hints",
    "fdo_profile",
    "objc_import",
    "objc_library",
]

_JAVA_RULES = [
    "java_binary",
    "java_import",
    "java_library",
    "java_lite_proto_library",
    "java_package_configuration",
    "java_plugin",
    "java_proto_library",
    "java_runtime",
    "java_test",
    "java_toolchain",
]

_WRAPPER = """
def {name}(**attrs):
    native.{name}(**attrs)
"""

def _native_rules_impl(ctx):
    package = ctx.attr.package
    ctx.file("WORKSPACE", 'workspace(name = "{}")\n'.format(ctx.name))
    ctx.file("BUILD", "")
    ctx.file(package + "/BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        "",
        'exports_files(["defs.bzl"])',
        "",
    ] + ([
        "alias(",
        '    name = "toolchain_type",',
        '    actual = "{}",'.format(ctx.attr.toolchain_type),
        ")",
        "",
    ] if ctx.attr.toolchain_type else [])))
    ctx.file(package + "/defs.bzl", '"""Bazel\'s native rules."""\n' +
                                    "".join([_WRAPPER.format(name = r) for r in ctx.attr.rules]))

_native_rules = repository_rule(
    implementation = _native_rules_impl,
    attrs = {
        "package": attr.string(mandatory = True),
        "rules": attr.string_list(mandatory = True),
        "toolchain_type": attr.string(),
    },
)

def native_rules_cc(name = "rules_cc"):
    _native_rules(
        name = name,
        package = "cc",
        rules = _CC_RULES,
        toolchain_type = "@bazel_tools//tools/cpp:toolchain_type",
    )

def native_rules_java(name = "rules_java"):
    _native_rules(
        name = name,
        package = "java",
        rules = _JAVA_RULES,
    )

_NO_COVERAGE = """#!/bin/sh
echo "coverage is not available: this workspace has no @remote_coverage_tools" >&2
exit 1
"""

def _no_coverage_tools_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "{}")\n'.format(ctx.name))
    ctx.file("no_coverage.sh", _NO_COVERAGE, executable = True)
    ctx.file("BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        "",
        'sh_binary(name = "coverage_report_generator", srcs = ["no_coverage.sh"])',
        "",
        'sh_binary(name = "lcov_merger", srcs = ["no_coverage.sh"])',
        "",
    ]))

no_coverage_tools = repository_rule(implementation = _no_coverage_tools_impl)
