"""The class names of the sources that have them, in the order of their class numbers.

Fashion-MNIST's names are those of its documentation (the IDX files hold numbers only); the CIFAR
names are those of the datasets' own `batches.meta` (`label_names`) and `meta`
(`fine_label_names`) files. MNIST and the 8×8 digits have no names beyond their digits.
"""

from __future__ import annotations

FASHION_MNIST: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

CIFAR10: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR100: tuple[str, ...] = tuple(
    """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
    """.split()
)

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": FASHION_MNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
}
"""Source name -> class names (index = class number)."""


def class_names(source: object) -> tuple[str, ...] | None:
    """The class names of the source named `source`, or `None` when it has none."""
    return CLASS_NAMES.get(source) if isinstance(source, str) else None
