import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER: _ClassVar[NodeRole]
    MANAGER: _ClassVar[NodeRole]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NEW: _ClassVar[TaskState]
    PENDING: _ClassVar[TaskState]
    ASSIGNED: _ClassVar[TaskState]
    ACCEPTED: _ClassVar[TaskState]
    PREPARING: _ClassVar[TaskState]
    READY: _ClassVar[TaskState]
    STARTING: _ClassVar[TaskState]
    RUNNING: _ClassVar[TaskState]
    COMPLETE: _ClassVar[TaskState]
    SHUTDOWN: _ClassVar[TaskState]
    FAILED: _ClassVar[TaskState]
    REJECTED: _ClassVar[TaskState]
    REMOVE: _ClassVar[TaskState]
    ORPHANED: _ClassVar[TaskState]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNKNOWN: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
WORKER: NodeRole
MANAGER: NodeRole
NEW: TaskState
PENDING: TaskState
ASSIGNED: TaskState
ACCEPTED: TaskState
PREPARING: TaskState
READY: TaskState
STARTING: TaskState
RUNNING: TaskState
COMPLETE: TaskState
SHUTDOWN: TaskState
FAILED: TaskState
REJECTED: TaskState
REMOVE: TaskState
ORPHANED: TaskState
LOG_STREAM_UNKNOWN: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream

class Annotations(_message.Message):
    __slots__ = ("name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeSpec(_message.Message):
    __slots__ = ("annotations", "desired_role", "membership", "availability")
    class Membership(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PENDING: _ClassVar[NodeSpec.Membership]
        ACCEPTED: _ClassVar[NodeSpec.Membership]
    PENDING: NodeSpec.Membership
    ACCEPTED: NodeSpec.Membership
    class Availability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTIVE: _ClassVar[NodeSpec.Availability]
        PAUSE: _ClassVar[NodeSpec.Availability]
        DRAIN: _ClassVar[NodeSpec.Availability]
    ACTIVE: NodeSpec.Availability
    PAUSE: NodeSpec.Availability
    DRAIN: NodeSpec.Availability
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_ROLE_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    desired_role: NodeRole
    membership: NodeSpec.Membership
    availability: NodeSpec.Availability
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., desired_role: _Optional[_Union[NodeRole, str]] = ..., membership: _Optional[_Union[NodeSpec.Membership, str]] = ..., availability: _Optional[_Union[NodeSpec.Availability, str]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("state", "message", "addr")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[NodeStatus.State]
        DOWN: _ClassVar[NodeStatus.State]
        READY: _ClassVar[NodeStatus.State]
        DISCONNECTED: _ClassVar[NodeStatus.State]
    UNKNOWN: NodeStatus.State
    DOWN: NodeStatus.State
    READY: NodeStatus.State
    DISCONNECTED: NodeStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    state: NodeStatus.State
    message: str
    addr: str
    def __init__(self, state: _Optional[_Union[NodeStatus.State, str]] = ..., message: _Optional[str] = ..., addr: _Optional[str] = ...) -> None: ...

class IssuanceStatus(_message.Message):
    __slots__ = ("state", "err")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[IssuanceStatus.State]
        RENEW: _ClassVar[IssuanceStatus.State]
        PENDING: _ClassVar[IssuanceStatus.State]
        ISSUED: _ClassVar[IssuanceStatus.State]
        FAILED: _ClassVar[IssuanceStatus.State]
        ROTATE: _ClassVar[IssuanceStatus.State]
    UNKNOWN: IssuanceStatus.State
    RENEW: IssuanceStatus.State
    PENDING: IssuanceStatus.State
    ISSUED: IssuanceStatus.State
    FAILED: IssuanceStatus.State
    ROTATE: IssuanceStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    state: IssuanceStatus.State
    err: str
    def __init__(self, state: _Optional[_Union[IssuanceStatus.State, str]] = ..., err: _Optional[str] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("role", "csr", "status", "certificate", "cn")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CN_FIELD_NUMBER: _ClassVar[int]
    role: NodeRole
    csr: bytes
    status: IssuanceStatus
    certificate: bytes
    cn: str
    def __init__(self, role: _Optional[_Union[NodeRole, str]] = ..., csr: _Optional[bytes] = ..., status: _Optional[_Union[IssuanceStatus, _Mapping]] = ..., certificate: _Optional[bytes] = ..., cn: _Optional[str] = ...) -> None: ...

class Platform(_message.Message):
    __slots__ = ("architecture", "os")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    os: str
    def __init__(self, architecture: _Optional[str] = ..., os: _Optional[str] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("nano_cpus", "memory_bytes")
    NANO_CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    nano_cpus: int
    memory_bytes: int
    def __init__(self, nano_cpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class PluginDescription(_message.Message):
    __slots__ = ("type", "name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class EngineDescription(_message.Message):
    __slots__ = ("engine_version", "labels", "plugins")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    engine_version: str
    labels: _containers.ScalarMap[str, str]
    plugins: _containers.RepeatedCompositeFieldContainer[PluginDescription]
    def __init__(self, engine_version: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., plugins: _Optional[_Iterable[_Union[PluginDescription, _Mapping]]] = ...) -> None: ...

class NodeTLSInfo(_message.Message):
    __slots__ = ("trust_root", "cert_issuer_subject", "cert_issuer_public_key")
    TRUST_ROOT_FIELD_NUMBER: _ClassVar[int]
    CERT_ISSUER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CERT_ISSUER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    trust_root: bytes
    cert_issuer_subject: bytes
    cert_issuer_public_key: bytes
    def __init__(self, trust_root: _Optional[bytes] = ..., cert_issuer_subject: _Optional[bytes] = ..., cert_issuer_public_key: _Optional[bytes] = ...) -> None: ...

class NodeDescription(_message.Message):
    __slots__ = ("hostname", "platform", "resources", "engine", "tls_info", "fips")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    TLS_INFO_FIELD_NUMBER: _ClassVar[int]
    FIPS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    platform: Platform
    resources: Resources
    engine: EngineDescription
    tls_info: NodeTLSInfo
    fips: bool
    def __init__(self, hostname: _Optional[str] = ..., platform: _Optional[_Union[Platform, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., engine: _Optional[_Union[EngineDescription, _Mapping]] = ..., tls_info: _Optional[_Union[NodeTLSInfo, _Mapping]] = ..., fips: _Optional[bool] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "spec", "description", "status", "certificate", "role")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: NodeSpec
    description: NodeDescription
    status: NodeStatus
    certificate: Certificate
    role: NodeRole
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[NodeSpec, _Mapping]] = ..., description: _Optional[_Union[NodeDescription, _Mapping]] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ..., certificate: _Optional[_Union[Certificate, _Mapping]] = ..., role: _Optional[_Union[NodeRole, str]] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("node_id", "addr")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    addr: str
    def __init__(self, node_id: _Optional[str] = ..., addr: _Optional[str] = ...) -> None: ...

class WeightedPeer(_message.Message):
    __slots__ = ("peer", "weight")
    PEER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    peer: Peer
    weight: int
    def __init__(self, peer: _Optional[_Union[Peer, _Mapping]] = ..., weight: _Optional[int] = ...) -> None: ...

class GetRootCACertificateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRootCACertificateResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    def __init__(self, certificate: _Optional[bytes] = ...) -> None: ...

class IssueNodeCertificateRequest(_message.Message):
    __slots__ = ("role", "csr", "token", "availability")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    role: NodeRole
    csr: bytes
    token: str
    availability: NodeSpec.Availability
    def __init__(self, role: _Optional[_Union[NodeRole, str]] = ..., csr: _Optional[bytes] = ..., token: _Optional[str] = ..., availability: _Optional[_Union[NodeSpec.Availability, str]] = ...) -> None: ...

class IssueNodeCertificateResponse(_message.Message):
    __slots__ = ("node_id", "node_membership")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_membership: NodeSpec.Membership
    def __init__(self, node_id: _Optional[str] = ..., node_membership: _Optional[_Union[NodeSpec.Membership, str]] = ...) -> None: ...

class NodeCertificateStatusRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class NodeCertificateStatusResponse(_message.Message):
    __slots__ = ("status", "certificate")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    status: IssuanceStatus
    certificate: Certificate
    def __init__(self, status: _Optional[_Union[IssuanceStatus, _Mapping]] = ..., certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("description", "session_id")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    description: NodeDescription
    session_id: str
    def __init__(self, description: _Optional[_Union[NodeDescription, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ("session_id", "node", "managers", "RootCA")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    ROOTCA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    node: Node
    managers: _containers.RepeatedCompositeFieldContainer[WeightedPeer]
    RootCA: bytes
    def __init__(self, session_id: _Optional[str] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., managers: _Optional[_Iterable[_Union[WeightedPeer, _Mapping]]] = ..., RootCA: _Optional[bytes] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: _duration_pb2.Duration
    def __init__(self, period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Driver(_message.Message):
    __slots__ = ("name", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    options: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("type", "source", "target", "readonly", "bind_options", "volume_options", "tmpfs_options")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        BIND: _ClassVar[Mount.Type]
        VOLUME: _ClassVar[Mount.Type]
        TMPFS: _ClassVar[Mount.Type]
        NPIPE: _ClassVar[Mount.Type]
        CLUSTER: _ClassVar[Mount.Type]
    BIND: Mount.Type
    VOLUME: Mount.Type
    TMPFS: Mount.Type
    NPIPE: Mount.Type
    CLUSTER: Mount.Type
    class BindOptions(_message.Message):
        __slots__ = ("propagation", "nonrecursive", "createmountpoint")
        class Propagation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            RPRIVATE: _ClassVar[Mount.BindOptions.Propagation]
            PRIVATE: _ClassVar[Mount.BindOptions.Propagation]
            RSHARED: _ClassVar[Mount.BindOptions.Propagation]
            SHARED: _ClassVar[Mount.BindOptions.Propagation]
            RSLAVE: _ClassVar[Mount.BindOptions.Propagation]
            SLAVE: _ClassVar[Mount.BindOptions.Propagation]
        RPRIVATE: Mount.BindOptions.Propagation
        PRIVATE: Mount.BindOptions.Propagation
        RSHARED: Mount.BindOptions.Propagation
        SHARED: Mount.BindOptions.Propagation
        RSLAVE: Mount.BindOptions.Propagation
        SLAVE: Mount.BindOptions.Propagation
        PROPAGATION_FIELD_NUMBER: _ClassVar[int]
        NONRECURSIVE_FIELD_NUMBER: _ClassVar[int]
        CREATEMOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
        propagation: Mount.BindOptions.Propagation
        nonrecursive: bool
        createmountpoint: bool
        def __init__(self, propagation: _Optional[_Union[Mount.BindOptions.Propagation, str]] = ..., nonrecursive: _Optional[bool] = ..., createmountpoint: _Optional[bool] = ...) -> None: ...
    class VolumeOptions(_message.Message):
        __slots__ = ("nocopy", "labels", "driver_config", "subpath")
        class LabelsEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: str
            def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
        NOCOPY_FIELD_NUMBER: _ClassVar[int]
        LABELS_FIELD_NUMBER: _ClassVar[int]
        DRIVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
        SUBPATH_FIELD_NUMBER: _ClassVar[int]
        nocopy: bool
        labels: _containers.ScalarMap[str, str]
        driver_config: Driver
        subpath: str
        def __init__(self, nocopy: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., driver_config: _Optional[_Union[Driver, _Mapping]] = ..., subpath: _Optional[str] = ...) -> None: ...
    class TmpfsOptions(_message.Message):
        __slots__ = ("size_bytes", "mode", "options")
        SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        OPTIONS_FIELD_NUMBER: _ClassVar[int]
        size_bytes: int
        mode: int
        options: str
        def __init__(self, size_bytes: _Optional[int] = ..., mode: _Optional[int] = ..., options: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    BIND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TMPFS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    type: Mount.Type
    source: str
    target: str
    readonly: bool
    bind_options: Mount.BindOptions
    volume_options: Mount.VolumeOptions
    tmpfs_options: Mount.TmpfsOptions
    def __init__(self, type: _Optional[_Union[Mount.Type, str]] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., readonly: _Optional[bool] = ..., bind_options: _Optional[_Union[Mount.BindOptions, _Mapping]] = ..., volume_options: _Optional[_Union[Mount.VolumeOptions, _Mapping]] = ..., tmpfs_options: _Optional[_Union[Mount.TmpfsOptions, _Mapping]] = ...) -> None: ...

class HealthConfig(_message.Message):
    __slots__ = ("test", "interval", "timeout", "retries", "start_period", "start_interval")
    TEST_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    START_PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    test: _containers.RepeatedScalarFieldContainer[str]
    interval: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    retries: int
    start_period: _duration_pb2.Duration
    start_interval: _duration_pb2.Duration
    def __init__(self, test: _Optional[_Iterable[str]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retries: _Optional[int] = ..., start_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., start_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FileTarget(_message.Message):
    __slots__ = ("name", "uid", "gid", "mode")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    gid: str
    mode: int
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., gid: _Optional[str] = ..., mode: _Optional[int] = ...) -> None: ...

class SecretReference(_message.Message):
    __slots__ = ("secret_id", "secret_name", "file")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    secret_name: str
    file: FileTarget
    def __init__(self, secret_id: _Optional[str] = ..., secret_name: _Optional[str] = ..., file: _Optional[_Union[FileTarget, _Mapping]] = ...) -> None: ...

class RuntimeTarget(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfigReference(_message.Message):
    __slots__ = ("config_id", "config_name", "file", "runtime")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    config_name: str
    file: FileTarget
    runtime: RuntimeTarget
    def __init__(self, config_id: _Optional[str] = ..., config_name: _Optional[str] = ..., file: _Optional[_Union[FileTarget, _Mapping]] = ..., runtime: _Optional[_Union[RuntimeTarget, _Mapping]] = ...) -> None: ...

class Privileges(_message.Message):
    __slots__ = ("selinux_context", "seccomp", "apparmor", "no_new_privileges")
    class SELinuxContext(_message.Message):
        __slots__ = ("disable", "user", "role", "type", "level")
        DISABLE_FIELD_NUMBER: _ClassVar[int]
        USER_FIELD_NUMBER: _ClassVar[int]
        ROLE_FIELD_NUMBER: _ClassVar[int]
        TYPE_FIELD_NUMBER: _ClassVar[int]
        LEVEL_FIELD_NUMBER: _ClassVar[int]
        disable: bool
        user: str
        role: str
        type: str
        level: str
        def __init__(self, disable: _Optional[bool] = ..., user: _Optional[str] = ..., role: _Optional[str] = ..., type: _Optional[str] = ..., level: _Optional[str] = ...) -> None: ...
    class SeccompOpts(_message.Message):
        __slots__ = ("mode", "profile")
        class SeccompMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            DEFAULT: _ClassVar[Privileges.SeccompOpts.SeccompMode]
            UNCONFINED: _ClassVar[Privileges.SeccompOpts.SeccompMode]
            CUSTOM: _ClassVar[Privileges.SeccompOpts.SeccompMode]
        DEFAULT: Privileges.SeccompOpts.SeccompMode
        UNCONFINED: Privileges.SeccompOpts.SeccompMode
        CUSTOM: Privileges.SeccompOpts.SeccompMode
        MODE_FIELD_NUMBER: _ClassVar[int]
        PROFILE_FIELD_NUMBER: _ClassVar[int]
        mode: Privileges.SeccompOpts.SeccompMode
        profile: bytes
        def __init__(self, mode: _Optional[_Union[Privileges.SeccompOpts.SeccompMode, str]] = ..., profile: _Optional[bytes] = ...) -> None: ...
    class AppArmorOpts(_message.Message):
        __slots__ = ("mode",)
        class AppArmorMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            DEFAULT: _ClassVar[Privileges.AppArmorOpts.AppArmorMode]
            DISABLED: _ClassVar[Privileges.AppArmorOpts.AppArmorMode]
        DEFAULT: Privileges.AppArmorOpts.AppArmorMode
        DISABLED: Privileges.AppArmorOpts.AppArmorMode
        MODE_FIELD_NUMBER: _ClassVar[int]
        mode: Privileges.AppArmorOpts.AppArmorMode
        def __init__(self, mode: _Optional[_Union[Privileges.AppArmorOpts.AppArmorMode, str]] = ...) -> None: ...
    SELINUX_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_FIELD_NUMBER: _ClassVar[int]
    APPARMOR_FIELD_NUMBER: _ClassVar[int]
    NO_NEW_PRIVILEGES_FIELD_NUMBER: _ClassVar[int]
    selinux_context: Privileges.SELinuxContext
    seccomp: Privileges.SeccompOpts
    apparmor: Privileges.AppArmorOpts
    no_new_privileges: bool
    def __init__(self, selinux_context: _Optional[_Union[Privileges.SELinuxContext, _Mapping]] = ..., seccomp: _Optional[_Union[Privileges.SeccompOpts, _Mapping]] = ..., apparmor: _Optional[_Union[Privileges.AppArmorOpts, _Mapping]] = ..., no_new_privileges: _Optional[bool] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("image", "labels", "command", "args", "env", "dir", "user", "mounts", "stop_grace_period", "groups", "secrets", "tty", "hostname", "dns_config", "healthcheck", "hosts", "open_stdin", "read_only", "stop_signal", "configs", "privileges", "init", "pidsLimit", "sysctls", "capability_add", "capability_drop", "ulimits", "oom_score_adj")
    class DNSConfig(_message.Message):
        __slots__ = ("nameservers", "search", "options")
        NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
        SEARCH_FIELD_NUMBER: _ClassVar[int]
        OPTIONS_FIELD_NUMBER: _ClassVar[int]
        nameservers: _containers.RepeatedScalarFieldContainer[str]
        search: _containers.RepeatedScalarFieldContainer[str]
        options: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, nameservers: _Optional[_Iterable[str]] = ..., search: _Optional[_Iterable[str]] = ..., options: _Optional[_Iterable[str]] = ...) -> None: ...
    class Ulimit(_message.Message):
        __slots__ = ("name", "soft", "hard")
        NAME_FIELD_NUMBER: _ClassVar[int]
        SOFT_FIELD_NUMBER: _ClassVar[int]
        HARD_FIELD_NUMBER: _ClassVar[int]
        name: str
        soft: int
        hard: int
        def __init__(self, name: _Optional[str] = ..., soft: _Optional[int] = ..., hard: _Optional[int] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SysctlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    STOP_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DNS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_STDIN_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGES_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    PIDSLIMIT_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_ADD_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_DROP_FIELD_NUMBER: _ClassVar[int]
    ULIMITS_FIELD_NUMBER: _ClassVar[int]
    OOM_SCORE_ADJ_FIELD_NUMBER: _ClassVar[int]
    image: str
    labels: _containers.ScalarMap[str, str]
    command: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    dir: str
    user: str
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    stop_grace_period: _duration_pb2.Duration
    groups: _containers.RepeatedScalarFieldContainer[str]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretReference]
    tty: bool
    hostname: str
    dns_config: ContainerSpec.DNSConfig
    healthcheck: HealthConfig
    hosts: _containers.RepeatedScalarFieldContainer[str]
    open_stdin: bool
    read_only: bool
    stop_signal: str
    configs: _containers.RepeatedCompositeFieldContainer[ConfigReference]
    privileges: Privileges
    init: _wrappers_pb2.BoolValue
    pidsLimit: int
    sysctls: _containers.ScalarMap[str, str]
    capability_add: _containers.RepeatedScalarFieldContainer[str]
    capability_drop: _containers.RepeatedScalarFieldContainer[str]
    ulimits: _containers.RepeatedCompositeFieldContainer[ContainerSpec.Ulimit]
    oom_score_adj: int
    def __init__(self, image: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., command: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., dir: _Optional[str] = ..., user: _Optional[str] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., stop_grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., groups: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Iterable[_Union[SecretReference, _Mapping]]] = ..., tty: _Optional[bool] = ..., hostname: _Optional[str] = ..., dns_config: _Optional[_Union[ContainerSpec.DNSConfig, _Mapping]] = ..., healthcheck: _Optional[_Union[HealthConfig, _Mapping]] = ..., hosts: _Optional[_Iterable[str]] = ..., open_stdin: _Optional[bool] = ..., read_only: _Optional[bool] = ..., stop_signal: _Optional[str] = ..., configs: _Optional[_Iterable[_Union[ConfigReference, _Mapping]]] = ..., privileges: _Optional[_Union[Privileges, _Mapping]] = ..., init: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., pidsLimit: _Optional[int] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., capability_add: _Optional[_Iterable[str]] = ..., capability_drop: _Optional[_Iterable[str]] = ..., ulimits: _Optional[_Iterable[_Union[ContainerSpec.Ulimit, _Mapping]]] = ..., oom_score_adj: _Optional[int] = ...) -> None: ...

class NetworkAttachmentSpec(_message.Message):
    __slots__ = ("container_id",)
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    def __init__(self, container_id: _Optional[str] = ...) -> None: ...

class GenericRuntimeSpec(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ResourceRequirements(_message.Message):
    __slots__ = ("limits", "reservations", "swap_bytes", "memory_swappiness")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    SWAP_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SWAPPINESS_FIELD_NUMBER: _ClassVar[int]
    limits: Resources
    reservations: Resources
    swap_bytes: _wrappers_pb2.Int64Value
    memory_swappiness: _wrappers_pb2.Int64Value
    def __init__(self, limits: _Optional[_Union[Resources, _Mapping]] = ..., reservations: _Optional[_Union[Resources, _Mapping]] = ..., swap_bytes: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., memory_swappiness: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ...) -> None: ...

class NetworkAttachmentConfig(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("attachment", "container", "generic", "resources", "log_driver", "networks")
    ATTACHMENT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    GENERIC_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LOG_DRIVER_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    attachment: NetworkAttachmentSpec
    container: ContainerSpec
    generic: GenericRuntimeSpec
    resources: ResourceRequirements
    log_driver: Driver
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachmentConfig]
    def __init__(self, attachment: _Optional[_Union[NetworkAttachmentSpec, _Mapping]] = ..., container: _Optional[_Union[ContainerSpec, _Mapping]] = ..., generic: _Optional[_Union[GenericRuntimeSpec, _Mapping]] = ..., resources: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., log_driver: _Optional[_Union[Driver, _Mapping]] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachmentConfig, _Mapping]]] = ...) -> None: ...

class PortConfig(_message.Message):
    __slots__ = ("name", "protocol", "target_port", "published_port", "publish_mode")
    class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TCP: _ClassVar[PortConfig.Protocol]
        UDP: _ClassVar[PortConfig.Protocol]
        SCTP: _ClassVar[PortConfig.Protocol]
    TCP: PortConfig.Protocol
    UDP: PortConfig.Protocol
    SCTP: PortConfig.Protocol
    class PublishMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INGRESS: _ClassVar[PortConfig.PublishMode]
        HOST: _ClassVar[PortConfig.PublishMode]
    INGRESS: PortConfig.PublishMode
    HOST: PortConfig.PublishMode
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_PORT_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    protocol: PortConfig.Protocol
    target_port: int
    published_port: int
    publish_mode: PortConfig.PublishMode
    def __init__(self, name: _Optional[str] = ..., protocol: _Optional[_Union[PortConfig.Protocol, str]] = ..., target_port: _Optional[int] = ..., published_port: _Optional[int] = ..., publish_mode: _Optional[_Union[PortConfig.PublishMode, str]] = ...) -> None: ...

class PortStatus(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    def __init__(self, ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ...) -> None: ...

class ContainerStatus(_message.Message):
    __slots__ = ("container_id", "pid", "exit_code")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    pid: int
    exit_code: int
    def __init__(self, container_id: _Optional[str] = ..., pid: _Optional[int] = ..., exit_code: _Optional[int] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("timestamp", "state", "message", "err", "container", "port_status")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PORT_STATUS_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    state: TaskState
    message: str
    err: str
    container: ContainerStatus
    port_status: PortStatus
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., message: _Optional[str] = ..., err: _Optional[str] = ..., container: _Optional[_Union[ContainerStatus, _Mapping]] = ..., port_status: _Optional[_Union[PortStatus, _Mapping]] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("annotations", "driver_config")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    driver_config: Driver
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., driver_config: _Optional[_Union[Driver, _Mapping]] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: NetworkSpec
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[NetworkSpec, _Mapping]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: Network
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    def __init__(self, ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "spec", "service_id", "slot", "node_id", "annotations", "service_annotations", "status", "desired_state", "networks", "endpoint", "log_driver")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    LOG_DRIVER_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: TaskSpec
    service_id: str
    slot: int
    node_id: str
    annotations: Annotations
    service_annotations: Annotations
    status: TaskStatus
    desired_state: TaskState
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    endpoint: Endpoint
    log_driver: Driver
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., service_id: _Optional[str] = ..., slot: _Optional[int] = ..., node_id: _Optional[str] = ..., annotations: _Optional[_Union[Annotations, _Mapping]] = ..., service_annotations: _Optional[_Union[Annotations, _Mapping]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., desired_state: _Optional[_Union[TaskState, str]] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., log_driver: _Optional[_Union[Driver, _Mapping]] = ...) -> None: ...

class SecretSpec(_message.Message):
    __slots__ = ("annotations", "data")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    data: bytes
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Secret(_message.Message):
    __slots__ = ("id", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: SecretSpec
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[SecretSpec, _Mapping]] = ...) -> None: ...

class ConfigSpec(_message.Message):
    __slots__ = ("annotations", "data")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    data: bytes
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Config(_message.Message):
    __slots__ = ("id", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: ConfigSpec
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[ConfigSpec, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task", "secret", "config")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    task: Task
    secret: Secret
    config: Config
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., secret: _Optional[_Union[Secret, _Mapping]] = ..., config: _Optional[_Union[Config, _Mapping]] = ...) -> None: ...

class AssignmentChange(_message.Message):
    __slots__ = ("assignment", "action")
    class AssignmentAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UPDATE: _ClassVar[AssignmentChange.AssignmentAction]
        REMOVE: _ClassVar[AssignmentChange.AssignmentAction]
    UPDATE: AssignmentChange.AssignmentAction
    REMOVE: AssignmentChange.AssignmentAction
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    action: AssignmentChange.AssignmentAction
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ..., action: _Optional[_Union[AssignmentChange.AssignmentAction, str]] = ...) -> None: ...

class AssignmentsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AssignmentsMessage(_message.Message):
    __slots__ = ("type", "applies_to", "results_in", "changes")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COMPLETE: _ClassVar[AssignmentsMessage.Type]
        INCREMENTAL: _ClassVar[AssignmentsMessage.Type]
    COMPLETE: AssignmentsMessage.Type
    INCREMENTAL: AssignmentsMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    APPLIES_TO_FIELD_NUMBER: _ClassVar[int]
    RESULTS_IN_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    type: AssignmentsMessage.Type
    applies_to: str
    results_in: str
    changes: _containers.RepeatedCompositeFieldContainer[AssignmentChange]
    def __init__(self, type: _Optional[_Union[AssignmentsMessage.Type, str]] = ..., applies_to: _Optional[str] = ..., results_in: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[AssignmentChange, _Mapping]]] = ...) -> None: ...

class UpdateTaskStatusRequest(_message.Message):
    __slots__ = ("session_id", "updates")
    class TaskStatusUpdate(_message.Message):
        __slots__ = ("task_id", "status")
        TASK_ID_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        task_id: str
        status: TaskStatus
        def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    updates: _containers.RepeatedCompositeFieldContainer[UpdateTaskStatusRequest.TaskStatusUpdate]
    def __init__(self, session_id: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[UpdateTaskStatusRequest.TaskStatusUpdate, _Mapping]]] = ...) -> None: ...

class UpdateTaskStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogSubscriptionOptions(_message.Message):
    __slots__ = ("streams", "follow", "tail", "since")
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedScalarFieldContainer[LogStream]
    follow: bool
    tail: int
    since: _timestamp_pb2.Timestamp
    def __init__(self, streams: _Optional[_Iterable[_Union[LogStream, str]]] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LogSelector(_message.Message):
    __slots__ = ("service_ids", "node_ids", "task_ids")
    SERVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    service_ids: _containers.RepeatedScalarFieldContainer[str]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service_ids: _Optional[_Iterable[str]] = ..., node_ids: _Optional[_Iterable[str]] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LogContext(_message.Message):
    __slots__ = ("service_id", "node_id", "task_id")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    node_id: str
    task_id: str
    def __init__(self, service_id: _Optional[str] = ..., node_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class LogAttr(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class LogMessage(_message.Message):
    __slots__ = ("context", "timestamp", "stream", "data", "attrs")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    context: LogContext
    timestamp: _timestamp_pb2.Timestamp
    stream: LogStream
    data: bytes
    attrs: _containers.RepeatedCompositeFieldContainer[LogAttr]
    def __init__(self, context: _Optional[_Union[LogContext, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stream: _Optional[_Union[LogStream, str]] = ..., data: _Optional[bytes] = ..., attrs: _Optional[_Iterable[_Union[LogAttr, _Mapping]]] = ...) -> None: ...

class ListenSubscriptionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubscriptionMessage(_message.Message):
    __slots__ = ("id", "selector", "options", "close")
    ID_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    selector: LogSelector
    options: LogSubscriptionOptions
    close: bool
    def __init__(self, id: _Optional[str] = ..., selector: _Optional[_Union[LogSelector, _Mapping]] = ..., options: _Optional[_Union[LogSubscriptionOptions, _Mapping]] = ..., close: _Optional[bool] = ...) -> None: ...

class PublishLogsMessage(_message.Message):
    __slots__ = ("subscription_id", "messages", "close")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    messages: _containers.RepeatedCompositeFieldContainer[LogMessage]
    close: bool
    def __init__(self, subscription_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[LogMessage, _Mapping]]] = ..., close: _Optional[bool] = ...) -> None: ...

class PublishLogsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
