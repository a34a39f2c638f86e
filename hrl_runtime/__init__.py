"""hrl-runtime: the contracts (skill, high level, agent, loop, registry) and the ``hrl`` CLI."""

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig, AsyncLoopResult, Plan
from hrl_runtime.errors import (
    ConfigError,
    HrlError,
    IncompatibleError,
    PackageError,
    UnknownSkillError,
)
from hrl_runtime.high_level import HighLevel
from hrl_runtime.loop import ControlLoop, Fault, LoopConfig, LoopResult, Plant
from hrl_runtime.registry import SkillRegistry, load_package, register_kind, verify_package
from hrl_runtime.safety import SafetyConfig, SafetyMonitor
from hrl_runtime.skill import (
    PackageContents,
    Packaged,
    Skill,
    SkillDynamics,
    SkillPrior,
    SkillValue,
)

__all__ = [
    "AsyncControlLoop",
    "AsyncLoopConfig",
    "AsyncLoopResult",
    "ConfigError",
    "ControlLoop",
    "Fault",
    "HierarchicalAgent",
    "HighLevel",
    "HrlError",
    "IncompatibleError",
    "LoopConfig",
    "LoopResult",
    "PackageContents",
    "PackageError",
    "Packaged",
    "Plan",
    "Plant",
    "SafetyConfig",
    "SafetyMonitor",
    "Skill",
    "SkillDynamics",
    "SkillPrior",
    "SkillRegistry",
    "SkillValue",
    "UnknownSkillError",
    "load_package",
    "register_kind",
    "verify_package",
]
