import datetime

from google.protobuf import duration_pb2 as _duration_pb2
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
WORKER: NodeRole
MANAGER: NodeRole

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
