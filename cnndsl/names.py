"""Names a .cnn file may not give, because the generated code needs them for itself.

Labels become attributes of generated nn.Modules, so none may be an attribute nn.Module already has
(`__call__`, `training`, `_modules`, `forward`, ...): MODULE_ATTRIBUTES is every name in
`dir(torch.nn.Module)`, `dir(torch.nn.Module())` and an instance's `vars()` for torch 2.14 (kept here so the
core never imports torch; tests/test_hostile_names.py fails when a torch release adds one). Other names
(variables, parameters, classes) are renamed by the backends, which seed their namespaces with RESERVED.
"""

from __future__ import annotations

import builtins
import keyword

MODULE_ATTRIBUTES = frozenset({
    'T_destination', '__annotations__', '__call__', '__class__', '__delattr__', '__dict__', '__dir__', '__doc__',
    '__eq__', '__format__', '__ge__', '__getattr__', '__getattribute__', '__getstate__', '__gt__', '__hash__',
    '__init__', '__init_subclass__', '__le__', '__lt__', '__module__', '__ne__', '__new__', '__reduce__',
    '__reduce_ex__', '__repr__', '__setattr__', '__setstate__', '__sizeof__', '__str__', '__subclasshook__',
    '__weakref__', '_apply', '_backward_hooks', '_backward_pre_hooks', '_buffers', '_call_impl',
    '_compiled_call_impl', '_forward_hooks', '_forward_hooks_always_called', '_forward_hooks_with_kwargs',
    '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_get_backward_hooks', '_get_backward_pre_hooks',
    '_get_name', '_is_full_backward_hook', '_load_from_state_dict', '_load_state_dict_post_hooks',
    '_load_state_dict_pre_hooks', '_maybe_warn_non_full_backward_hook', '_modules', '_named_members',
    '_non_persistent_buffers_set', '_parameters', '_register_load_state_dict_pre_hook', '_register_state_dict_hook',
    '_replicate_for_data_parallel', '_save_to_state_dict', '_slow_forward', '_state_dict_hooks',
    '_state_dict_pre_hooks', '_version', '_wrapped_call_impl', 'add_module', 'apply', 'bfloat16', 'buffers',
    'call_super_init', 'children', 'compile', 'cpu', 'cuda', 'double', 'dump_patches', 'eval', 'extra_repr',
    'float', 'forward', 'get_buffer', 'get_extra_state', 'get_parameter', 'get_submodule', 'half', 'ipu',
    'load_state_dict', 'modules', 'mtia', 'named_buffers', 'named_children', 'named_modules', 'named_parameters',
    'parameters', 'register_backward_hook', 'register_buffer', 'register_forward_hook', 'register_forward_pre_hook',
    'register_full_backward_hook', 'register_full_backward_pre_hook', 'register_load_state_dict_post_hook',
    'register_load_state_dict_pre_hook', 'register_module', 'register_parameter', 'register_state_dict_post_hook',
    'register_state_dict_pre_hook', 'requires_grad_', 'set_extra_state', 'set_submodule', 'share_memory',
    'state_dict', 'to', 'to_empty', 'train', 'training', 'type', 'xpu', 'zero_grad'
})

# Names every generated file may use: Python's keywords, soft keywords and builtins, and what the files import
RESERVED = frozenset(set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
                     | {"self", "torch", "nn", "F", "np", "math", "OrderedDict", "WeightError"})
