"""Train and score a classifier on the iris data set shipped with scikit-learn."""

import sys

import numpy
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main() -> int:
    features, labels = load_iris(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=0.3, random_state=0
    )
    model = LogisticRegression(max_iter=500).fit(train_x, train_y)
    score = model.score(test_x, test_y)
    print(f"classify: numpy {numpy.__version__}, scikit-learn {sklearn.__version__}")
    print(f"classify: iris accuracy {score:.2f}")
    return 0 if score > 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
