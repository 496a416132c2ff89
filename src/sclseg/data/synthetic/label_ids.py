"""The Cityscapes labelIds that the synthetic scenes paint, named once and looked up in the label table.

Taking the numbers from `sclseg.data.labels` (checked against `cityscapesscripts`) keeps the generated
labels in step with the table that the loaders and the evaluation read them with.
"""

from __future__ import annotations

from ..labels import NAME_TO_LABEL_ID as _ID

# Void ids (the loaders map them to ignore), painted because real frames hold them too.
UNLABELED, EGO, STATIC, GROUND = _ID["unlabeled"], _ID["ego vehicle"], _ID["static"], _ID["ground"]
PARKING, RAIL = _ID["parking"], _ID["rail track"]

# Stuff: the ground, facades, barriers, vegetation and sky.
ROAD, SIDEWALK, TERRAIN, SKY = _ID["road"], _ID["sidewalk"], _ID["terrain"], _ID["sky"]
BUILDING, WALL, FENCE, VEGETATION = _ID["building"], _ID["wall"], _ID["fence"], _ID["vegetation"]

# Things on poles.
POLE, LIGHT, SIGN = _ID["pole"], _ID["traffic light"], _ID["traffic sign"]

# People and vehicles.
PERSON, RIDER = _ID["person"], _ID["rider"]
CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = (
    _ID["car"], _ID["truck"], _ID["bus"], _ID["train"], _ID["motorcycle"], _ID["bicycle"],
)
