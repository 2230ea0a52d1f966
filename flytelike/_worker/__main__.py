"""``python -m flytelike._worker LOG_PATH``: a warm worker of the local backend's process pool."""

from flytelike._worker._pipe import main

if __name__ == "__main__":
    main()
